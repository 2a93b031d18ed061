//! The models directory: model id rules, file paths and loading by id.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::model_file;

/// Longest allowed model id, in bytes.
pub const MAX_MODEL_ID_LEN: usize = 128;

/// Checks a model id: 1 to 128 ASCII letters, digits, `-`, `_` or `.`, not
/// starting with `.`. Such an id can never name a path outside the models
/// directory.
pub fn validate_model_id(id: &str) -> Result<()> {
    let invalid = |why: &str| {
        Err(Error::InvalidName(format!(
            "invalid model id '{}': {why}",
            shorten(id)
        )))
    };
    if id.is_empty() {
        return invalid("it is empty");
    }
    if id.len() > MAX_MODEL_ID_LEN {
        return invalid(&format!(
            "it has {} characters, more than {MAX_MODEL_ID_LEN}",
            id.chars().count()
        ));
    }
    if id.starts_with('.') {
        return invalid("it starts with '.'");
    }
    if let Some(bad) = id
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return invalid(&format!(
            "character {bad:?} is not allowed; use letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

/// Cuts long ids in messages to their first 40 characters.
fn shorten(id: &str) -> String {
    if id.chars().count() <= 40 {
        id.to_string()
    } else {
        format!("{}...", id.chars().take(40).collect::<String>())
    }
}

/// Returns `<models_dir>/<id>.model` after validating `id`.
pub fn model_path(models_dir: &Path, id: &str) -> Result<PathBuf> {
    validate_model_id(id)?;
    Ok(models_dir.join(format!("{id}.{}", model_file::EXTENSION)))
}

/// Loads the model `id` from `models_dir`.
pub fn load_model(models_dir: &Path, id: &str) -> Result<Model> {
    let path = model_path(models_dir, id)?;
    model_file::load(&path, id)
}

/// Parses an input vector written as `0.5,0.1` or `[0.5, 0.1]`. Every value
/// must be a finite number and the vector must not be empty.
pub fn parse_vector(text: &str) -> Result<Vec<f64>> {
    let trimmed = text.trim();
    let inner = trimmed
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(trimmed);
    if inner.trim().is_empty() {
        return Err(Error::InvalidPayload("input vector is empty".to_string()));
    }
    inner
        .split(',')
        .enumerate()
        .map(|(index, item)| {
            let item = item.trim();
            match item.parse::<f64>() {
                Ok(value) if value.is_finite() => Ok(value),
                _ => Err(Error::InvalidPayload(format!(
                    "input vector value {} ('{item}') is not a finite number; \
                     write the vector as 0.5,0.1 or [0.5, 0.1]",
                    index + 1
                ))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_model_ids() {
        for id in ["m1", "model-2.v3_final", "A", &"x".repeat(128)] {
            assert!(validate_model_id(id).is_ok(), "{id} rejected");
        }
    }

    #[test]
    fn rejects_unsafe_model_ids() {
        let long = "x".repeat(129);
        for id in [
            "",
            "../../etc/passwd",
            "a/b",
            ".hidden",
            "a b",
            "m\\1",
            "é",
            long.as_str(),
        ] {
            let error = validate_model_id(id).unwrap_err();
            assert_eq!(error.code(), "INVALID_NAME", "{id}");
        }
    }

    #[test]
    fn parses_vector_forms() {
        assert_eq!(parse_vector("0.5,0.1").unwrap(), vec![0.5, 0.1]);
        assert_eq!(parse_vector(" [0.5, -1e2] ").unwrap(), vec![0.5, -100.0]);
        assert_eq!(parse_vector("3").unwrap(), vec![3.0]);
    }

    #[test]
    fn rejects_bad_vectors() {
        for text in ["", "[]", "a,1", "1,,2", "NaN", "1,inf", "[1,2"] {
            let error = parse_vector(text).unwrap_err();
            assert_eq!(error.code(), "INVALID_PAYLOAD", "{text}");
        }
    }
}
