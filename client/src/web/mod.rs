//! The web client: one page (Training, Prediction and Models tabs, a live log) and a
//! JSON API over the cluster client. Templates and static files are compiled into the
//! binary, so the page works with no internet access.
//!
//! Routes: `GET /` the page; `POST /train` (multipart `model_name`, `file`, optional
//! `epochs`); `POST /predict` (JSON `{model_id, input_vector}`); `GET /models`;
//! `GET /cluster` (every node's status); `GET /static/app.css` and `/static/app.js`.
//! Every API response is JSON with a `success` field, errors included.

mod i18n;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Buf;
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use warp::http::{header, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::net::{Client, ClientError};
use crate::wire::{self, TrainOptions};
pub use i18n::Lang;

const INDEX_TEMPLATE: &str = include_str!("assets/index.html");
const APP_CSS: &str = include_str!("assets/app.css");
const APP_JS: &str = include_str!("assets/app.js");

/// Room for the multipart boundaries and the small text fields beside the file.
const FORM_OVERHEAD_BYTES: u64 = 64 * 1024;
/// Maximum size of a prediction request body.
const MAX_PREDICT_BODY_BYTES: u64 = 1024 * 1024;

/// Settings of the web client.
#[derive(Clone, Debug)]
pub struct WebSettings {
    /// Largest accepted CSV upload, in bytes.
    pub max_upload_bytes: u64,
}

impl Default for WebSettings {
    fn default() -> WebSettings {
        WebSettings { max_upload_bytes: 64 * 1024 * 1024 }
    }
}

struct AppState {
    client: Client,
    settings: WebSettings,
    tera: tera::Tera,
}

/// Binds `addr` (port 0 picks a free port) and returns the bound address and the server
/// future, which runs until dropped.
pub fn bind(
    client: Client,
    settings: WebSettings,
    addr: SocketAddr,
) -> Result<(SocketAddr, impl std::future::Future<Output = ()>), warp::Error> {
    warp::serve(routes(client, settings)).try_bind_ephemeral(addr)
}

/// Builds all routes of the web client.
pub fn routes(client: Client, settings: WebSettings) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let form_limit = settings.max_upload_bytes.saturating_add(FORM_OVERHEAD_BYTES);
    let mut tera = tera::Tera::default();
    tera.add_raw_template("index.html", INDEX_TEMPLATE).expect("the embedded page template is valid");
    let state = Arc::new(AppState { client, settings, tera });
    let with_state = warp::any().map(move || state.clone());

    // Path filters come before method filters, so that an unknown path is a 404 rather
    // than the 405 of a route with the wrong method.
    let index = warp::path::end()
        .and(warp::get())
        .and(warp::query::<LangQuery>())
        .and(warp::cookie::optional::<String>("lang"))
        .and(warp::header::optional::<String>("accept-language"))
        .and(with_state.clone())
        .map(index_page);
    let css = warp::path!("static" / "app.css").and(warp::get()).map(|| asset(APP_CSS, "text/css; charset=utf-8"));
    let js = warp::path!("static" / "app.js").and(warp::get()).map(|| asset(APP_JS, "text/javascript; charset=utf-8"));

    let train = warp::path!("train")
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::multipart::form().max_length(form_limit))
        .then(train_handler);
    let predict = warp::path!("predict")
        .and(warp::post())
        .and(warp::body::content_length_limit(MAX_PREDICT_BODY_BYTES))
        .and(warp::body::bytes())
        .and(with_state.clone())
        .then(predict_handler);
    let models = warp::path!("models").and(warp::get()).and(with_state.clone()).then(models_handler);
    let cluster = warp::path!("cluster").and(warp::get()).and(with_state.clone()).then(cluster_handler);

    index
        .or(css)
        .unify()
        .or(js)
        .unify()
        .or(train)
        .unify()
        .or(predict)
        .unify()
        .or(models)
        .unify()
        .or(cluster)
        .unify()
        .recover(recover)
        .unify()
}

#[derive(Debug, Deserialize)]
struct LangQuery {
    lang: Option<String>,
}

/// Renders the page in the chosen language; an explicit `?lang=` is remembered in a cookie.
fn index_page(query: LangQuery, cookie: Option<String>, accept: Option<String>, state: Arc<AppState>) -> Response {
    let lang = Lang::choose(query.lang.as_deref(), cookie.as_deref(), accept.as_deref());
    let texts = i18n::texts(lang);

    let mut context = tera::Context::new();
    context.insert("lang", lang.code());
    context.insert("t", &texts);
    context.insert("max_upload_bytes", &state.settings.max_upload_bytes);
    context.insert("max_upload_mib", &format!("{:.0}", state.settings.max_upload_bytes as f64 / (1024.0 * 1024.0)));
    // Script-safe JSON: no "<" can close the surrounding script element.
    let texts_json = serde_json::to_string(&texts).unwrap_or_else(|_| "{}".into()).replace('<', "\\u003c");
    context.insert("texts_json", &texts_json);

    let html = match state.tera.render("index.html", &context) {
        Ok(html) => html,
        Err(error) => {
            log::error!("cannot render the page: {error:?}");
            let body = "<!doctype html><title>Error</title><p>The page could not be rendered; see the web client's log.</p>";
            return warp::reply::with_status(warp::reply::html(body), StatusCode::INTERNAL_SERVER_ERROR).into_response();
        }
    };

    let mut response = warp::reply::html(html).into_response();
    if query.lang.as_deref().and_then(Lang::parse).is_some() {
        let cookie = format!("lang={}; Path=/; Max-Age=31536000; SameSite=Lax", lang.code());
        if let Ok(value) = header::HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
    }
    response
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
    response
}

/// Builds a JSON error reply `{"success": false, "error", "code"}` with an HTTP status.
fn error_reply(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"success": false, "error": message.into(), "code": code});
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

/// Maps a cluster client error to the HTTP status and JSON the page shows.
fn client_error_reply(error: ClientError) -> Response {
    let status = match &error {
        ClientError::InvalidInput(_) => StatusCode::BAD_REQUEST,
        ClientError::Rejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        ClientError::Unreachable { .. } | ClientError::NoLeader { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ClientError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        ClientError::InvalidResponse { .. } => StatusCode::BAD_GATEWAY,
    };
    let code = match &error {
        ClientError::InvalidInput(_) => "INVALID_INPUT".to_string(),
        ClientError::Unreachable { .. } => "UNREACHABLE".to_string(),
        ClientError::Timeout { .. } => "TIMEOUT".to_string(),
        ClientError::InvalidResponse { .. } => "INVALID_RESPONSE".to_string(),
        ClientError::Rejected { error, .. } | ClientError::NoLeader { last: error, .. } => error.code.to_string(),
    };
    let message = match &error {
        ClientError::Rejected { error, .. } => error.message.clone(),
        other => other.to_string(),
    };
    error_reply(status, &code, message)
}

fn success_reply(mut body: Value) -> Response {
    if let Some(object) = body.as_object_mut() {
        object.insert("success".into(), Value::Bool(true));
    }
    warp::reply::json(&body).into_response()
}

/// The fields of a training form.
#[derive(Debug, Default)]
struct TrainForm {
    model_name: Option<String>,
    file_name: Option<String>,
    file: Option<Vec<u8>>,
    epochs: Option<String>,
}

async fn train_handler(state: Arc<AppState>, form: warp::multipart::FormData) -> Response {
    let form = match read_train_form(form, state.settings.max_upload_bytes).await {
        Ok(form) => form,
        Err(reply) => return reply,
    };
    let Some(model) = form.model_name.map(|m| m.trim().to_string()).filter(|m| !m.is_empty()) else {
        return error_reply(StatusCode::BAD_REQUEST, "INVALID_INPUT", "missing model_name: enter a model name");
    };
    let Some(csv) = form.file.filter(|f| !f.is_empty()) else {
        return error_reply(StatusCode::BAD_REQUEST, "INVALID_INPUT", "missing file: choose a non-empty CSV file");
    };
    let epochs = match form.epochs.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        None => None,
        Some(text) => match text.parse::<u32>() {
            Ok(epochs) => Some(epochs),
            Err(_) => return error_reply(StatusCode::BAD_REQUEST, "INVALID_INPUT", format!("invalid epochs {text:?}: enter a whole number")),
        },
    };

    let file_name = form.file_name.unwrap_or_default();
    log::info!("web: training {model} on {file_name} ({} bytes)", csv.len());
    let options = TrainOptions { epochs, ..TrainOptions::default() };
    match state.client.train(&model, &csv, &options).await {
        Ok(result) => success_reply(serde_json::to_value(result).unwrap_or(Value::Null)),
        Err(error) => {
            log::warn!("web: training {model} failed: {error}");
            client_error_reply(error)
        }
    }
}

/// Reads the form parts, keeping at most `max_file` bytes of the file.
async fn read_train_form(mut form: warp::multipart::FormData, max_file: u64) -> Result<TrainForm, Response> {
    let mut fields = TrainForm::default();
    let bad_form = |e: warp::Error| error_reply(StatusCode::BAD_REQUEST, "INVALID_INPUT", format!("invalid multipart form: {e}"));

    while let Some(part) = form.try_next().await.map_err(bad_form)? {
        let name = part.name().to_string();
        let file_name = part.filename().map(str::to_string);
        let limit = if name == "file" { max_file } else { FORM_OVERHEAD_BYTES };
        let data = read_part(part, limit).await.map_err(|e| match e {
            PartError::TooLarge => too_large_reply(max_file),
            PartError::Form(e) => bad_form(e),
        })?;
        match name.as_str() {
            "model_name" => fields.model_name = Some(String::from_utf8_lossy(&data).into_owned()),
            "epochs" => fields.epochs = Some(String::from_utf8_lossy(&data).into_owned()),
            "file" => {
                fields.file_name = file_name;
                fields.file = Some(data);
            }
            other => log::debug!("web: ignoring form field {other:?}"),
        }
    }
    Ok(fields)
}

enum PartError {
    TooLarge,
    Form(warp::Error),
}

async fn read_part(part: warp::multipart::Part, limit: u64) -> Result<Vec<u8>, PartError> {
    let mut data = Vec::new();
    let mut stream = part.stream();
    while let Some(mut chunk) = stream.try_next().await.map_err(PartError::Form)? {
        if data.len() as u64 + chunk.remaining() as u64 > limit {
            return Err(PartError::TooLarge);
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            data.extend_from_slice(piece);
            let read = piece.len();
            chunk.advance(read);
        }
    }
    Ok(data)
}

fn too_large_reply(max_file: u64) -> Response {
    let mib = max_file as f64 / (1024.0 * 1024.0);
    let message = format!("the file is too large: the limit is {mib:.0} MiB; start the web client with a larger --max-upload-mib");
    error_reply(StatusCode::PAYLOAD_TOO_LARGE, "FILE_TOO_LARGE", message)
}

async fn predict_handler(body: bytes::Bytes, state: Arc<AppState>) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => return error_reply(StatusCode::BAD_REQUEST, "INVALID_JSON", format!("the request body is not valid JSON: {e}")),
    };
    let Some(model) = request.get("model_id").and_then(Value::as_str).map(str::to_string) else {
        return error_reply(StatusCode::BAD_REQUEST, "INVALID_INPUT", "missing model_id: choose a model");
    };
    let input = match request.get("input_vector").map(wire::parse_vector) {
        Some(Ok(input)) => input,
        Some(Err(error)) => return error_reply(StatusCode::BAD_REQUEST, "INVALID_INPUT", error.message),
        None => return error_reply(StatusCode::BAD_REQUEST, "INVALID_INPUT", "missing input_vector: enter numbers such as 0.5, 0.1"),
    };

    match state.client.predict(&model, &input).await {
        Ok(result) => success_reply(serde_json::to_value(result).unwrap_or(Value::Null)),
        Err(error) => {
            log::warn!("web: prediction with {model} failed: {error}");
            client_error_reply(error)
        }
    }
}

async fn models_handler(state: Arc<AppState>) -> Response {
    match state.client.list_models().await {
        Ok(models) => success_reply(json!({ "models": models })),
        Err(error) => client_error_reply(error),
    }
}

async fn cluster_handler(state: Arc<AppState>) -> Response {
    let statuses = state.client.status_all().await;
    let nodes: Vec<Value> = statuses
        .into_iter()
        .map(|(address, result)| match result {
            Ok(status) => json!({"address": address, "reachable": true, "status": status}),
            Err(error) => json!({"address": address, "reachable": false, "error": error.to_string()}),
        })
        .collect();
    success_reply(json!({ "nodes": nodes }))
}

/// Turns warp's rejections into JSON errors, so the page never gets an empty body.
async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let reply = if rejection.is_not_found() {
        error_reply(StatusCode::NOT_FOUND, "NOT_FOUND", "no such page or API route")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        error_reply(StatusCode::PAYLOAD_TOO_LARGE, "FILE_TOO_LARGE", "the upload is larger than the web client's limit (--max-upload-mib)")
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        error_reply(StatusCode::LENGTH_REQUIRED, "INVALID_INPUT", "the request needs a Content-Length header")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        error_reply(StatusCode::METHOD_NOT_ALLOWED, "INVALID_INPUT", "this route does not accept that HTTP method")
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        error_reply(StatusCode::BAD_REQUEST, "INVALID_INPUT", e.to_string())
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        error_reply(StatusCode::BAD_REQUEST, "INVALID_INPUT", e.to_string())
    } else {
        log::warn!("web: unhandled rejection {rejection:?}");
        error_reply(StatusCode::BAD_REQUEST, "INVALID_INPUT", format!("the request was rejected: {rejection:?}"))
    };
    Ok(reply)
}
