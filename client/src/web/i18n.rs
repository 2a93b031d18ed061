//! English and Spanish text of the web page, and the choice of language for a request.

use std::collections::BTreeMap;

/// A language the page is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    Es,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
        }
    }

    pub fn parse(code: &str) -> Option<Lang> {
        match code.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "es" => Some(Lang::Es),
            _ => None,
        }
    }

    /// Picks the language: an explicit `?lang=` first, then the `lang` cookie the switch
    /// sets, then the browser's Accept-Language, then English.
    pub fn choose(query: Option<&str>, cookie: Option<&str>, accept_language: Option<&str>) -> Lang {
        query
            .and_then(Lang::parse)
            .or_else(|| cookie.and_then(Lang::parse))
            .or_else(|| accept_language.and_then(from_accept_language))
            .unwrap_or(Lang::En)
    }
}

/// Reads an Accept-Language header such as `es-MX,es;q=0.9,en;q=0.5` and returns the
/// supported language with the highest quality; ties go to the earlier entry.
pub fn from_accept_language(header: &str) -> Option<Lang> {
    let mut best: Option<(Lang, f32)> = None;
    for entry in header.split(',') {
        let mut parts = entry.split(';');
        let tag = parts.next().unwrap_or("").trim();
        let quality = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let primary = tag.split('-').next().unwrap_or("");
        let Some(lang) = Lang::parse(primary) else { continue };
        if quality > 0.0 && best.is_none_or(|(_, q)| quality > q) {
            best = Some((lang, quality));
        }
    }
    best.map(|(lang, _)| lang)
}

/// Each text of the page: key, English, Spanish. The page's script reads the same table.
const TEXTS: &[(&str, &str, &str)] = &[
    ("title", "Cluster training", "Entrenamiento en clúster"),
    ("subtitle", "Train neural networks on CSV files, replicated by Raft", "Entrena redes neuronales con archivos CSV, replicados con Raft"),
    ("language", "Language", "Idioma"),
    ("tab_train", "Training", "Entrenamiento"),
    ("tab_predict", "Prediction", "Predicción"),
    ("tab_models", "Models", "Modelos"),
    ("model_name", "Model name", "Nombre del modelo"),
    ("model_name_hint", "Letters, digits, '-', '_' and '.'", "Letras, dígitos, '-', '_' y '.'"),
    ("csv_file", "CSV file (last column is the label)", "Archivo CSV (la última columna es la etiqueta)"),
    ("epochs", "Epochs (optional)", "Épocas (opcional)"),
    ("train_submit", "Upload and train", "Subir y entrenar"),
    ("training", "Training… this can take a few minutes", "Entrenando… puede tardar unos minutos"),
    ("trained", "Model trained", "Modelo entrenado"),
    ("train_failed", "Training failed", "El entrenamiento falló"),
    ("predict_model", "Model", "Modelo"),
    ("predict_vector", "Input vector (one number per feature)", "Vector de entrada (un número por característica)"),
    ("predict_submit", "Predict", "Predecir"),
    ("predicting", "Predicting…", "Prediciendo…"),
    ("prediction", "Prediction", "Predicción"),
    ("label", "Label", "Etiqueta"),
    ("predict_failed", "Prediction failed", "La predicción falló"),
    ("no_models", "No models yet: train one in the Training tab", "Aún no hay modelos: entrena uno en la pestaña Entrenamiento"),
    ("refresh", "Refresh", "Actualizar"),
    ("col_id", "Model", "Modelo"),
    ("col_dataset", "Dataset", "Conjunto de datos"),
    ("col_date", "Date", "Fecha"),
    ("col_status", "Status", "Estado"),
    ("col_accuracy", "Accuracy", "Precisión"),
    ("col_task", "Task", "Tarea"),
    ("col_features", "Features", "Características"),
    ("models_failed", "Could not load the models", "No se pudieron cargar los modelos"),
    ("log", "Activity log", "Registro de actividad"),
    ("cluster", "Cluster", "Clúster"),
    ("leader", "leader", "líder"),
    ("no_leader", "no leader", "sin líder"),
    ("unreachable", "unreachable", "inaccesible"),
    ("nodes_up", "nodes reachable", "nodos accesibles"),
    ("leader_changed", "Leader is now", "El líder ahora es"),
    ("missing_name", "Enter a model name", "Escribe un nombre de modelo"),
    ("missing_file", "Choose a CSV file", "Elige un archivo CSV"),
    ("missing_model", "Choose a model", "Elige un modelo"),
    ("missing_vector", "Enter numbers separated by commas, such as 0.5, 0.1", "Escribe números separados por comas, por ejemplo 0.5, 0.1"),
    ("file_too_large", "The file is too large; the limit is", "El archivo es demasiado grande; el límite es"),
    ("network_error", "The web client did not respond; is it still running?", "El cliente web no respondió; ¿sigue en marcha?"),
    ("sent", "Sent", "Enviado"),
    ("loaded_models", "Models loaded", "Modelos cargados"),
];

/// Returns the page's texts in `lang`, by key.
pub fn texts(lang: Lang) -> BTreeMap<&'static str, &'static str> {
    TEXTS.iter().map(|&(key, en, es)| (key, if lang == Lang::Es { es } else { en })).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_prefers_quality() {
        assert_eq!(from_accept_language("en;q=0.4,es-MX;q=0.9"), Some(Lang::Es));
        assert_eq!(from_accept_language("es-ES,es;q=0.9,en;q=0.8"), Some(Lang::Es));
        assert_eq!(from_accept_language("fr-FR,en-US;q=0.7,es;q=0.3"), Some(Lang::En));
        assert_eq!(from_accept_language("fr,de"), None);
        assert_eq!(from_accept_language("es;q=0"), None);
    }

    #[test]
    fn query_beats_cookie_beats_header() {
        assert_eq!(Lang::choose(Some("es"), Some("en"), Some("en")), Lang::Es);
        assert_eq!(Lang::choose(None, Some("es"), Some("en")), Lang::Es);
        assert_eq!(Lang::choose(Some("xx"), None, Some("es")), Lang::Es);
        assert_eq!(Lang::choose(None, None, None), Lang::En);
    }

    #[test]
    fn every_text_translated() {
        for (key, en, es) in TEXTS {
            assert!(!en.is_empty(), "English text {key} is empty");
            assert!(!es.is_empty(), "Spanish text {key} is empty");
        }
        assert_eq!(texts(Lang::Es)["tab_train"], "Entrenamiento");
    }
}
