//! Client wire protocol: one JSON object per line, shared by `node` and `client`.
//!
//! Requests are `{"type": TYPE, "payload": {...}, "request_id": "..."}`; every
//! response carries `success`. Field names follow the original Python client
//! (`model_name`, `data_content`, `input_vector`, `modelId`, `isLeader`), and a
//! node that cannot serve a write returns exactly [`NOT_LEADER_MESSAGE`], because
//! old clients match that string to decide to retry on the next node.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The error text of a node that is not the leader. Old clients compare it byte for byte.
pub const NOT_LEADER_MESSAGE: &str = "No soy el líder";

/// Default maximum length of one request line, in bytes.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Maximum length of a model id or dataset name, in characters.
pub const MAX_NAME_LEN: usize = 128;

/// Stable, machine-readable error codes sent in the `code` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    InvalidJson,
    UnknownType,
    InvalidPayload,
    InvalidName,
    InvalidCsv,
    DatasetNotFound,
    ModelNotFound,
    DimensionMismatch,
    NotLeader,
    Timeout,
    TrainingFailed,
    PredictionFailed,
    LineTooLong,
    Unavailable,
    Internal,
}

impl ErrorCode {
    /// Returns the code as it appears on the wire, e.g. `INVALID_JSON`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "INVALID_JSON",
            ErrorCode::UnknownType => "UNKNOWN_TYPE",
            ErrorCode::InvalidPayload => "INVALID_PAYLOAD",
            ErrorCode::InvalidName => "INVALID_NAME",
            ErrorCode::InvalidCsv => "INVALID_CSV",
            ErrorCode::DatasetNotFound => "DATASET_NOT_FOUND",
            ErrorCode::ModelNotFound => "MODEL_NOT_FOUND",
            ErrorCode::DimensionMismatch => "DIMENSION_MISMATCH",
            ErrorCode::NotLeader => "NOT_LEADER",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::TrainingFailed => "TRAINING_FAILED",
            ErrorCode::PredictionFailed => "PREDICTION_FAILED",
            ErrorCode::LineTooLong => "LINE_TOO_LONG",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    /// Parses a wire code; unknown strings return `None`.
    pub fn parse(code: &str) -> Option<ErrorCode> {
        serde_json::from_value(Value::String(code.to_string())).ok()
    }

    /// Returns whether a client may retry the same request (with the same request id) elsewhere or later.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorCode::NotLeader | ErrorCode::Unavailable | ErrorCode::Timeout)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed request: what went wrong, its code, and where the leader is when that helps.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
    pub leader: Option<String>,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> WireError {
        WireError { code, message: message.into(), leader: None }
    }

    /// Builds the rejection of a node that cannot reach a leader, in the original's wording.
    pub fn not_leader(leader: Option<String>) -> WireError {
        WireError { code: ErrorCode::NotLeader, message: NOT_LEADER_MESSAGE.to_string(), leader }
    }

    /// Builds the response line object, echoing the request id when there is one.
    pub fn to_response(&self, request_id: Option<&str>) -> Value {
        let mut body = Map::new();
        body.insert("success".into(), Value::Bool(false));
        body.insert("error".into(), Value::String(self.message.clone()));
        body.insert("code".into(), Value::String(self.code.as_str().into()));
        if self.code == ErrorCode::NotLeader {
            body.insert("leader".into(), self.leader.clone().map(Value::String).unwrap_or(Value::Null));
        }
        if let Some(id) = request_id {
            body.insert("request_id".into(), Value::String(id.to_string()));
        }
        Value::Object(body)
    }
}

/// Optional training settings a TRAIN_REQUEST may carry; absent fields use ai-core's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<f64>,
    /// `sgd` or `adam`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer: Option<String>,
    /// Hidden layer sizes, e.g. `[64, 32]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<Vec<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// `auto`, `classify` or `regress`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<f64>,
}

impl TrainOptions {
    /// Checks ranges so that a bad option is an INVALID_PAYLOAD, not a failed child process.
    pub fn validate(&self) -> Result<(), WireError> {
        let invalid = |what: String| Err(WireError::new(ErrorCode::InvalidPayload, what));
        if let Some(epochs) = self.epochs {
            if epochs == 0 || epochs > 100_000 {
                return invalid(format!("epochs must be between 1 and 100000, got {epochs}"));
            }
        }
        if let Some(batch) = self.batch_size {
            if batch == 0 || batch > 1_000_000 {
                return invalid(format!("batch_size must be between 1 and 1000000, got {batch}"));
            }
        }
        if let Some(rate) = self.learning_rate {
            if !(rate.is_finite() && rate > 0.0 && rate <= 10.0) {
                return invalid(format!("learning_rate must be in (0, 10], got {rate}"));
            }
        }
        if let Some(optimizer) = &self.optimizer {
            if optimizer != "sgd" && optimizer != "adam" {
                return invalid(format!("optimizer must be \"sgd\" or \"adam\", got {optimizer:?}"));
            }
        }
        if let Some(hidden) = &self.hidden {
            if hidden.is_empty() || hidden.len() > 8 || hidden.iter().any(|&n| n == 0 || n > 4096) {
                return invalid(format!("hidden must list 1 to 8 layer sizes between 1 and 4096, got {hidden:?}"));
            }
        }
        if let Some(task) = &self.task {
            if !["auto", "classify", "regress"].contains(&task.as_str()) {
                return invalid(format!("task must be \"auto\", \"classify\" or \"regress\", got {task:?}"));
            }
        }
        if let Some(fraction) = self.validation {
            if !(0.0..0.9).contains(&fraction) {
                return invalid(format!("validation must be in [0, 0.9), got {fraction}"));
            }
        }
        Ok(())
    }

    /// Returns the options as `ai-core train` flags.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut push = |flag: &str, value: String| {
            args.push(flag.to_string());
            args.push(value);
        };
        if let Some(v) = self.epochs {
            push("--epochs", v.to_string());
        }
        if let Some(v) = self.batch_size {
            push("--batch-size", v.to_string());
        }
        if let Some(v) = self.learning_rate {
            push("--learning-rate", v.to_string());
        }
        if let Some(v) = &self.optimizer {
            push("--optimizer", v.clone());
        }
        if let Some(v) = &self.hidden {
            let sizes: Vec<String> = v.iter().map(|n| n.to_string()).collect();
            push("--hidden", sizes.join(","));
        }
        if let Some(v) = self.seed {
            push("--seed", v.to_string());
        }
        if let Some(v) = &self.task {
            push("--task", v.clone());
        }
        if let Some(v) = self.validation {
            push("--validation", v.to_string());
        }
        args
    }
}

/// TRAIN_REQUEST: train `model_name` on a CSV sent inline (`data_content`, Base64) or on a
/// dataset the cluster already stores (`dataset`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainRequest {
    pub model_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    #[serde(flatten)]
    pub options: TrainOptions,
}

/// UPLOAD_DATASET: store a CSV in the cluster without training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UploadRequest {
    pub name: String,
    pub data_content: String,
}

/// PREDICT_REQUEST: run `input_vector` through `model_id`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredictRequest {
    pub model_id: String,
    pub input_vector: Vec<f64>,
}

/// A parsed request of any type.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Train(TrainRequest),
    UploadDataset(UploadRequest),
    Predict(PredictRequest),
    ListModels,
    GetStatus,
    GetLeader,
}

impl Request {
    /// Returns the `type` string of this request on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Request::Train(_) => "TRAIN_REQUEST",
            Request::UploadDataset(_) => "UPLOAD_DATASET",
            Request::Predict(_) => "PREDICT_REQUEST",
            Request::ListModels => "LIST_MODELS",
            Request::GetStatus => "GET_STATUS",
            Request::GetLeader => "GET_LEADER",
        }
    }

    /// Whether the request changes replicated state and so must run on the leader.
    pub fn is_write(&self) -> bool {
        matches!(self, Request::Train(_) | Request::UploadDataset(_))
    }

    fn payload(&self) -> Value {
        let to_value = |v: Result<Value, serde_json::Error>| v.unwrap_or(Value::Null);
        match self {
            Request::Train(r) => to_value(serde_json::to_value(r)),
            Request::UploadDataset(r) => to_value(serde_json::to_value(r)),
            Request::Predict(r) => to_value(serde_json::to_value(r)),
            Request::ListModels | Request::GetStatus | Request::GetLeader => Value::Object(Map::new()),
        }
    }
}

/// A request with its optional idempotency key.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    pub request: Request,
    pub request_id: Option<String>,
}

impl Envelope {
    /// Encodes the request as one line, without the trailing newline.
    pub fn to_line(&self) -> String {
        self.to_value().to_string()
    }

    fn to_value(&self) -> Value {
        let mut body = Map::new();
        body.insert("type".into(), Value::String(self.request.type_name().into()));
        body.insert("payload".into(), self.request.payload());
        if let Some(id) = &self.request_id {
            body.insert("request_id".into(), Value::String(id.clone()));
        }
        Value::Object(body)
    }
}

impl Envelope {
    /// Encodes the request as one line marked as forwarded by node `by`.
    pub fn to_forwarded_line(&self, by: &str) -> String {
        let mut value = self.to_value();
        value["forwarded_by"] = Value::String(by.to_string());
        value.to_string()
    }
}

/// A request line that could not be parsed, with the request id when one was readable.
#[derive(Debug, PartialEq)]
pub struct ParseFailure {
    pub error: WireError,
    pub request_id: Option<String>,
}

/// Parses one request line (without its newline).
pub fn parse_request(line: &[u8]) -> Result<Envelope, ParseFailure> {
    parse_request_with_origin(line).map(|(envelope, _)| envelope)
}

/// Parses one request line and also returns the `forwarded_by` node id that a node adds
/// when it forwards a write to the leader, so the leader never forwards it again.
pub fn parse_request_with_origin(line: &[u8]) -> Result<(Envelope, Option<String>), ParseFailure> {
    let fail = |error: WireError, request_id: Option<String>| ParseFailure { error, request_id };

    let text = std::str::from_utf8(line).map_err(|e| {
        fail(WireError::new(ErrorCode::InvalidJson, format!("request is not valid UTF-8: {e}")), None)
    })?;
    let value: Value = serde_json::from_str(text.trim()).map_err(|e| {
        fail(WireError::new(ErrorCode::InvalidJson, format!("request is not valid JSON: {e}")), None)
    })?;
    let Value::Object(mut object) = value else {
        return Err(fail(WireError::new(ErrorCode::InvalidJson, "request must be a JSON object"), None));
    };

    let request_id = match object.remove("request_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.is_empty() && id.len() <= 128 => Some(id),
        Some(other) => {
            let error = WireError::new(
                ErrorCode::InvalidPayload,
                format!("request_id must be a non-empty string of at most 128 bytes, got {other}"),
            );
            return Err(fail(error, None));
        }
    };

    let kind = match object.remove("type") {
        Some(Value::String(kind)) => kind,
        Some(other) => {
            let error = WireError::new(ErrorCode::InvalidPayload, format!("field \"type\" must be a string, got {other}"));
            return Err(fail(error, request_id));
        }
        None => {
            let error = WireError::new(ErrorCode::InvalidPayload, "missing field \"type\"");
            return Err(fail(error, request_id));
        }
    };
    let payload = match object.remove("payload") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(payload @ Value::Object(_)) => payload,
        Some(other) => {
            let error = WireError::new(ErrorCode::InvalidPayload, format!("field \"payload\" must be an object, got {other}"));
            return Err(fail(error, request_id));
        }
    };

    let forwarded_by = match object.remove("forwarded_by") {
        Some(Value::String(node)) => Some(node),
        _ => None,
    };
    match parse_payload(&kind, payload) {
        Ok(request) => Ok((Envelope { request, request_id }, forwarded_by)),
        Err(error) => Err(fail(error, request_id)),
    }
}

fn parse_payload(kind: &str, payload: Value) -> Result<Request, WireError> {
    match kind {
        "TRAIN_REQUEST" => {
            let request: TrainRequest = from_payload(kind, payload)?;
            if request.data_content.is_none() && request.dataset.is_none() {
                return Err(WireError::new(
                    ErrorCode::InvalidPayload,
                    "TRAIN_REQUEST needs \"data_content\" (the CSV in Base64) or \"dataset\" (a stored dataset name)",
                ));
            }
            request.options.validate()?;
            Ok(Request::Train(request))
        }
        "UPLOAD_DATASET" => Ok(Request::UploadDataset(from_payload(kind, payload)?)),
        "PREDICT_REQUEST" => parse_predict(payload),
        "LIST_MODELS" => Ok(Request::ListModels),
        "GET_STATUS" => Ok(Request::GetStatus),
        "GET_LEADER" => Ok(Request::GetLeader),
        other => Err(WireError::new(
            ErrorCode::UnknownType,
            format!(
                "unknown request type {other:?}; expected one of TRAIN_REQUEST, UPLOAD_DATASET, \
                 PREDICT_REQUEST, LIST_MODELS, GET_STATUS, GET_LEADER"
            ),
        )),
    }
}

fn from_payload<T: serde::de::DeserializeOwned>(kind: &str, payload: Value) -> Result<T, WireError> {
    serde_json::from_value(payload)
        .map_err(|e| WireError::new(ErrorCode::InvalidPayload, format!("invalid {kind} payload: {e}")))
}

fn parse_predict(mut payload: Value) -> Result<Request, WireError> {
    let model_id = match payload.get_mut("model_id").map(Value::take) {
        Some(Value::String(id)) => id,
        Some(other) => {
            return Err(WireError::new(ErrorCode::InvalidPayload, format!("model_id must be a string, got {other}")));
        }
        None => return Err(WireError::new(ErrorCode::InvalidPayload, "PREDICT_REQUEST needs \"model_id\"")),
    };
    let input_vector = match payload.get("input_vector") {
        Some(value) => parse_vector(value)?,
        None => return Err(WireError::new(ErrorCode::InvalidPayload, "PREDICT_REQUEST needs \"input_vector\"")),
    };
    Ok(Request::Predict(PredictRequest { model_id, input_vector }))
}

/// Reads an input vector given as a JSON array of numbers or as a string
/// `"0.5,0.1"` / `"[0.5, 0.1]"`. Empty vectors and non-finite values are rejected.
pub fn parse_vector(value: &Value) -> Result<Vec<f64>, WireError> {
    let invalid = |message: String| WireError::new(ErrorCode::InvalidPayload, message);

    let numbers = match value {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| item.as_f64().ok_or_else(|| invalid(format!("input_vector[{i}] is not a number: {item}"))))
            .collect::<Result<Vec<f64>, WireError>>()?,
        Value::String(text) => parse_vector_text(text).map_err(invalid)?,
        other => return Err(invalid(format!("input_vector must be an array of numbers or a string, got {other}"))),
    };

    if numbers.is_empty() {
        return Err(invalid("input_vector is empty; send one number per feature".into()));
    }
    if let Some(i) = numbers.iter().position(|x| !x.is_finite()) {
        return Err(invalid(format!("input_vector[{i}] is not a finite number")));
    }
    Ok(numbers)
}

/// Parses `"0.5,0.1"` or `"[0.5, 0.1]"` into numbers.
pub fn parse_vector_text(text: &str) -> Result<Vec<f64>, String> {
    let inner = text.trim();
    let inner = inner.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(inner).trim();
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    inner
        .split(',')
        .enumerate()
        .map(|(i, part)| {
            let part = part.trim();
            part.parse::<f64>().map_err(|_| format!("input_vector value {i} is not a number: {part:?}"))
        })
        .collect()
}

/// Checks a user-chosen model id or dataset name: letters, digits, `-`, `_`, `.`, not
/// starting with `.`, at most [`MAX_NAME_LEN`] characters. This is what keeps client
/// input from choosing a path outside a node's data directory.
pub fn validate_name(kind: &str, name: &str) -> Result<(), WireError> {
    let invalid = |why: &str| {
        WireError::new(
            ErrorCode::InvalidName,
            format!(
                "invalid {kind} {name:?}: {why}; use 1 to {MAX_NAME_LEN} letters, digits, '-', '_' or '.', not starting with '.'"
            ),
        )
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(invalid("it is too long"));
    }
    if name.starts_with('.') {
        return Err(invalid("it starts with '.'"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(invalid(&format!("character {c:?} is not allowed")));
    }
    Ok(())
}

/// One model as listed by LIST_MODELS.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    pub dataset: String,
    /// RFC 3339 time the model was committed.
    pub date: String,
    pub status: String,
    pub accuracy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<usize>,
    #[serde(default, rename = "logIndex", skip_serializing_if = "Option::is_none")]
    pub log_index: Option<u64>,
}

/// Reads a response line into a JSON object, turning `success: false` into a [`WireError`].
pub fn parse_response(line: &str) -> Result<Map<String, Value>, WireError> {
    let value: Value = serde_json::from_str(line.trim())
        .map_err(|e| WireError::new(ErrorCode::InvalidJson, format!("response is not valid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(WireError::new(ErrorCode::InvalidJson, "response is not a JSON object"));
    };
    if object.get("success").and_then(Value::as_bool) == Some(true) {
        return Ok(object);
    }
    let message = object.get("error").and_then(Value::as_str).unwrap_or("request failed without a message");
    let code = object
        .get("code")
        .and_then(Value::as_str)
        .and_then(ErrorCode::parse)
        .unwrap_or(if message == NOT_LEADER_MESSAGE { ErrorCode::NotLeader } else { ErrorCode::Internal });
    let leader = object.get("leader").and_then(Value::as_str).map(str::to_string);
    Err(WireError { code, message: message.to_string(), leader })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(line: &str) -> WireError {
        parse_request(line.as_bytes()).expect_err("line should be rejected").error
    }

    #[test]
    fn not_json_is_invalid_json() {
        assert_eq!(parse_error("hello").code, ErrorCode::InvalidJson);
    }

    #[test]
    fn non_utf8_is_invalid_json() {
        let failure = parse_request(&[0xff, 0xfe, b'{']).unwrap_err();
        assert_eq!(failure.error.code, ErrorCode::InvalidJson);
    }

    #[test]
    fn missing_type_is_invalid_payload() {
        assert_eq!(parse_error(r#"{"payload": {}}"#).code, ErrorCode::InvalidPayload);
    }

    #[test]
    fn unknown_type_is_unknown_type() {
        assert_eq!(parse_error(r#"{"type": "DANCE", "payload": {}}"#).code, ErrorCode::UnknownType);
    }

    #[test]
    fn request_id_kept_on_payload_error() {
        let failure = parse_request(br#"{"type": "DANCE", "request_id": "r1"}"#).unwrap_err();
        assert_eq!(failure.request_id.as_deref(), Some("r1"));
    }

    #[test]
    fn predict_accepts_string_vectors() {
        for text in ["0.5,0.1", "[0.5, 0.1]", " 0.5 , 0.1 "] {
            let line = serde_json::json!({"type": "PREDICT_REQUEST", "payload": {"model_id": "m", "input_vector": text}});
            let envelope = parse_request(line.to_string().as_bytes()).unwrap();
            let Request::Predict(predict) = envelope.request else { panic!("not a predict request") };
            assert_eq!(predict.input_vector, vec![0.5, 0.1], "input {text:?}");
        }
    }

    #[test]
    fn predict_rejects_bad_vectors() {
        for vector in [serde_json::json!(["a", 1]), serde_json::json!([]), serde_json::json!("1,x"), serde_json::json!(3)] {
            let line = serde_json::json!({"type": "PREDICT_REQUEST", "payload": {"model_id": "m", "input_vector": vector}});
            assert_eq!(parse_error(&line.to_string()).code, ErrorCode::InvalidPayload, "vector {vector}");
        }
    }

    #[test]
    fn train_needs_data_or_dataset() {
        let line = r#"{"type": "TRAIN_REQUEST", "payload": {"model_name": "m"}}"#;
        assert_eq!(parse_error(line).code, ErrorCode::InvalidPayload);
    }

    #[test]
    fn train_options_are_checked() {
        let line = r#"{"type": "TRAIN_REQUEST", "payload": {"model_name": "m", "data_content": "", "epochs": 0}}"#;
        assert_eq!(parse_error(line).code, ErrorCode::InvalidPayload);
    }

    #[test]
    fn envelope_round_trips() {
        let envelope = Envelope {
            request: Request::Train(TrainRequest {
                model_name: "m1".into(),
                data_content: Some("eCx5CjEsMgo=".into()),
                dataset: None,
                options: TrainOptions { epochs: Some(5), ..TrainOptions::default() },
            }),
            request_id: Some("abc".into()),
        };
        assert_eq!(parse_request(envelope.to_line().as_bytes()).unwrap(), envelope);
        let (forwarded, origin) = parse_request_with_origin(envelope.to_forwarded_line("Node_B").as_bytes()).unwrap();
        assert_eq!(forwarded, envelope);
        assert_eq!(origin.as_deref(), Some("Node_B"));
    }

    #[test]
    fn hostile_names_rejected() {
        let long = "a".repeat(300);
        for name in ["../../etc/passwd", "a/b", "", long.as_str(), ".hidden", "a\\b", "a b", "ñ"] {
            assert!(validate_name("model id", name).is_err(), "name {name:?} should be rejected");
        }
        for name in ["m1", "circles.v2", "A-b_c"] {
            assert!(validate_name("model id", name).is_ok(), "name {name:?} should be accepted");
        }
    }

    #[test]
    fn not_leader_response_keeps_original_text() {
        let response = WireError::not_leader(None).to_response(None);
        assert_eq!(response["error"], "No soy el líder");
        assert_eq!(response["code"], "NOT_LEADER");
        assert!(response["leader"].is_null());
    }

    #[test]
    fn response_errors_parse() {
        let error = parse_response(r#"{"success": false, "error": "No soy el líder"}"#).unwrap_err();
        assert_eq!(error.code, ErrorCode::NotLeader);
        let ok = parse_response(r#"{"success": true, "models": []}"#).unwrap();
        assert!(ok.contains_key("models"));
    }
}
