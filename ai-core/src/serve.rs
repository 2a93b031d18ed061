//! The prediction worker: JSON requests on stdin, one JSON response line per
//! request on stdout, with a cache of loaded models.
//!
//! Request: `{"id": <any>, "model_id": "m1", "inputs": [[0.5, 0.1], ...]}`
//! (`inputs` may also be a single vector). Success:
//! `{"id", "success": true, "predictions": [[...], ...], "labels": [...]}`.
//! Failure: `{"id", "success": false, "error", "code"}`; the worker goes on
//! with the next line.
//!
//! Logs go to stderr: start, stop and model loads at info level, failed
//! requests at debug level. Per-request lines stay off by default so that a
//! parent process that never reads stderr cannot fill the pipe and block
//! the worker.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::model_file;
use crate::store::model_path;

/// Maximum request line length in bytes; a longer line gets an error response.
pub const MAX_REQUEST_BYTES: u64 = 64 << 20;

/// Loaded models keyed by id, each with the file's modification time and
/// size when it was read; a change of either reloads the model.
pub struct ModelCache {
    models_dir: PathBuf,
    entries: HashMap<String, CachedModel>,
}

struct CachedModel {
    modified: Option<SystemTime>,
    size: u64,
    model: Model,
}

impl ModelCache {
    pub fn new(models_dir: &Path) -> ModelCache {
        ModelCache {
            models_dir: models_dir.to_path_buf(),
            entries: HashMap::new(),
        }
    }

    /// Returns model `id`, reading its file when it is not cached or has
    /// changed since it was read.
    pub fn get(&mut self, id: &str) -> Result<&Model> {
        let path = model_path(&self.models_dir, id)?;
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.entries.remove(id);
                return Err(Error::ModelNotFound {
                    id: id.to_string(),
                    path,
                });
            }
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        let modified = metadata.modified().ok();
        let size = metadata.len();

        let fresh = self
            .entries
            .get(id)
            .is_some_and(|entry| entry.modified == modified && entry.size == size);
        if !fresh {
            let model = model_file::load(&path, id)?;
            log::info!("loaded model {id} from {}", path.display());
            self.entries.insert(
                id.to_string(),
                CachedModel {
                    modified,
                    size,
                    model,
                },
            );
        }
        Ok(&self.entries[id].model)
    }
}

/// Reads requests from `input` and writes one response line for each, until
/// end of input. Returns an error only when reading or writing fails, and a
/// closed output ends the loop without an error.
pub fn serve(
    models_dir: &Path,
    input: impl BufRead,
    mut output: impl Write,
) -> std::io::Result<()> {
    let mut cache = ModelCache::new(models_dir);
    let mut limited = input.take(MAX_REQUEST_BYTES + 1);
    let mut line = Vec::new();
    loop {
        line.clear();
        limited.set_limit(MAX_REQUEST_BYTES + 1);
        if limited.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let response = if line.len() as u64 > MAX_REQUEST_BYTES {
            skip_rest_of_line(&mut limited)?;
            error_response(
                Value::Null,
                "INVALID_PAYLOAD",
                &format!("request line exceeds {MAX_REQUEST_BYTES} bytes"),
            )
        } else if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        } else {
            handle_line(&mut cache, &line)
        };

        let written = serde_json::to_writer(&mut output, &response)
            .map_err(std::io::Error::from)
            .and_then(|()| output.write_all(b"\n"))
            .and_then(|()| output.flush());
        match written {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
    }
}

fn skip_rest_of_line(input: &mut std::io::Take<impl BufRead>) -> std::io::Result<()> {
    let mut discard = Vec::new();
    loop {
        discard.clear();
        input.set_limit(MAX_REQUEST_BYTES);
        let read = input.read_until(b'\n', &mut discard)?;
        if read == 0 || discard.last() == Some(&b'\n') {
            return Ok(());
        }
    }
}

/// Returns the response to one request line.
pub fn handle_line(cache: &mut ModelCache, line: &[u8]) -> Value {
    let request: Value = match serde_json::from_slice(line) {
        Ok(value) => value,
        Err(e) => {
            log::debug!("request line is not valid JSON: {e}");
            return error_response(
                Value::Null,
                "INVALID_JSON",
                &format!("request is not valid JSON: {e}"),
            );
        }
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let result = if request.get("check_csv").is_some() {
        check_request(&request)
    } else {
        predict_request(cache, &request)
    };
    match result {
        Ok(response) => {
            let mut response = response;
            response["id"] = id;
            response
        }
        Err(e) => {
            log::debug!("request {id} failed with {}: {e}", e.code());
            error_response(id, e.code(), &e.to_string())
        }
    }
}

/// Validates the CSV file at `check_csv` (a path) as `ai-core check` does, so a node can
/// check an upload without starting a process.
fn check_request(request: &Value) -> Result<Value> {
    let path = request
        .get("check_csv")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::InvalidPayload("check_csv must be a file path string".to_string()))?;
    let task = match request.get("task").and_then(Value::as_str).unwrap_or("auto") {
        "auto" => crate::labels::TaskChoice::Auto,
        "classify" => crate::labels::TaskChoice::Classify,
        "regress" => crate::labels::TaskChoice::Regress,
        other => return Err(Error::InvalidPayload(format!("task must be auto, classify or regress, got {other:?}"))),
    };
    let dataset = crate::dataset::load_csv(std::path::Path::new(path))?;
    let targets = crate::labels::encode_targets(&dataset.labels, task)?;
    Ok(crate::cli::check_summary(&dataset, &targets))
}

fn predict_request(cache: &mut ModelCache, request: &Value) -> Result<Value> {
    let model_id = request
        .get("model_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            Error::InvalidPayload("request needs a string field model_id".to_string())
        })?;
    let inputs = parse_inputs(request.get("inputs"))?;
    let model = cache.get(model_id)?;
    let predictions = model.predict(model_id, &inputs)?;

    let outputs: Vec<&Vec<f64>> = predictions.iter().map(|p| &p.outputs).collect();
    let labels: Vec<Option<&String>> = predictions.iter().map(|p| p.label.as_ref()).collect();
    Ok(json!({"id": null, "success": true, "predictions": outputs, "labels": labels}))
}

/// Reads `inputs` as a list of vectors, or one vector, of finite numbers.
fn parse_inputs(inputs: Option<&Value>) -> Result<Vec<Vec<f64>>> {
    let invalid = |message: &str| Error::InvalidPayload(message.to_string());
    let rows = inputs
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("request needs a field inputs: a list of number lists"))?;
    if rows.is_empty() {
        return Err(invalid("inputs is empty"));
    }
    if rows.iter().all(Value::is_number) {
        return Ok(vec![parse_row(rows, 0)?]);
    }
    rows.iter()
        .enumerate()
        .map(|(index, row)| {
            let values = row.as_array().ok_or_else(|| {
                Error::InvalidPayload(format!("inputs[{index}] is not a list of numbers"))
            })?;
            parse_row(values, index)
        })
        .collect()
}

fn parse_row(values: &[Value], index: usize) -> Result<Vec<f64>> {
    if values.is_empty() {
        return Err(Error::InvalidPayload(format!("inputs[{index}] is empty")));
    }
    values
        .iter()
        .map(|v| {
            v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                Error::InvalidPayload(format!(
                    "inputs[{index}] contains {v}, which is not a number"
                ))
            })
        })
        .collect()
}

fn error_response(id: Value, code: &str, message: &str) -> Value {
    json!({"id": id, "success": false, "error": message, "code": code})
}
