//! A mock cluster for tests: nodes that speak the JSON-lines protocol on 127.0.0.1 ports
//! picked by the OS, keep models in memory, and misbehave when a test script requests it.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub mod browser;
pub mod real_cluster;

use base64::Engine;
use client::wire::{self, Envelope, ErrorCode, Request, WireError};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What a node does with one request.
pub enum Action {
    /// Send this object as the response line.
    Reply(Value),
    /// Close the connection without a response.
    Drop,
    /// Never respond, keeping the connection open.
    Hang,
    /// Handle the request as a healthy cluster would.
    Normal,
    /// Handle the request, then close the connection before the response is sent, as a
    /// leader does when it crashes after committing.
    NormalThenDrop,
    /// Handle the request, send the response, then close the connection, as a node does
    /// when it restarts between two requests of a client.
    NormalThenClose,
}

/// A test's override, called with the node index, the request and the number of earlier
/// requests with the same id (0 for the first). It returns the node's action.
pub type Script = Arc<dyn Fn(usize, &Envelope, usize) -> Action + Send + Sync>;

/// One request as a node received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub node: usize,
    pub kind: &'static str,
    pub request_id: Option<String>,
}

#[derive(Clone, Debug)]
struct MockModel {
    features: usize,
    labels: Vec<String>,
    dataset: String,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    models: HashMap<String, MockModel>,
    applied_ids: HashSet<String>,
    trains_applied: usize,
}

/// Handle to a running mock cluster; the nodes stop when the test's runtime ends.
#[derive(Clone)]
pub struct MockCluster {
    pub addrs: Vec<String>,
    pub ids: Vec<String>,
    pub leader: usize,
    state: Arc<Mutex<State>>,
}

impl MockCluster {
    /// Starts `n` healthy nodes; node 0 leads.
    pub async fn start(n: usize) -> MockCluster {
        MockCluster::start_scripted(n, Arc::new(|_, _, _| Action::Normal)).await
    }

    pub async fn start_scripted(n: usize, script: Script) -> MockCluster {
        let state = Arc::new(Mutex::new(State::default()));
        let ids: Vec<String> = (0..n).map(|i| format!("Node_{}", (b'A' + i as u8) as char)).collect();
        let mut addrs = Vec::new();
        for index in 0..n {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mock node");
            addrs.push(listener.local_addr().unwrap().to_string());
            let node = NodeCtx { index, ids: ids.clone(), leader: 0, state: state.clone(), script: script.clone() };
            tokio::spawn(accept_loop(listener, node));
        }
        MockCluster { addrs, ids, leader: 0, state }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Number of TRAIN_REQUESTs applied, counting a retried request id once.
    pub fn trains_applied(&self) -> usize {
        self.state.lock().unwrap().trains_applied
    }

    pub fn has_model(&self, id: &str) -> bool {
        self.state.lock().unwrap().models.contains_key(id)
    }
}

/// Returns an address where nothing listens: a port the OS handed out, closed again.
pub async fn dead_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    addr
}

#[derive(Clone)]
struct NodeCtx {
    index: usize,
    ids: Vec<String>,
    leader: usize,
    state: Arc<Mutex<State>>,
    script: Script,
}

async fn accept_loop(listener: TcpListener, node: NodeCtx) {
    while let Ok((socket, _)) = listener.accept().await {
        tokio::spawn(serve(socket, node.clone()));
    }
}

async fn serve(socket: TcpStream, node: NodeCtx) {
    let mut stream = BufReader::new(socket);
    let mut line = String::new();
    loop {
        line.clear();
        match stream.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let response = match wire::parse_request(line.trim_end().as_bytes()) {
            Err(failure) => failure.error.to_response(failure.request_id.as_deref()),
            Ok(envelope) => match node.decide(&envelope) {
                Action::Reply(value) => value,
                Action::Drop => return,
                Action::Hang => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
                Action::Normal => node.handle(&envelope),
                Action::NormalThenDrop => {
                    node.handle(&envelope);
                    return;
                }
                Action::NormalThenClose => {
                    let mut text = node.handle(&envelope).to_string();
                    text.push('\n');
                    let _ = stream.get_mut().write_all(text.as_bytes()).await;
                    return;
                }
            },
        };
        let mut text = response.to_string();
        text.push('\n');
        if stream.get_mut().write_all(text.as_bytes()).await.is_err() {
            return;
        }
    }
}

impl NodeCtx {
    fn decide(&self, envelope: &Envelope) -> Action {
        let seen = {
            let mut state = self.state.lock().unwrap();
            let seen = state
                .received
                .iter()
                .filter(|r| r.request_id.is_some() && r.request_id == envelope.request_id)
                .count();
            let kind = envelope.request.type_name();
            state.received.push(Received { node: self.index, kind, request_id: envelope.request_id.clone() });
            seen
        };
        (self.script)(self.index, envelope, seen)
    }

    fn handle(&self, envelope: &Envelope) -> Value {
        let id = envelope.request_id.as_deref();
        let result = match &envelope.request {
            Request::Train(train) => self.train(&train.model_name, train.data_content.as_deref().unwrap_or(""), id),
            Request::UploadDataset(upload) => {
                csv_shape(&upload.data_content).map(|_| json!({"success": true, "dataset": upload.name, "logIndex": 3}))
            }
            Request::Predict(predict) => self.predict(&predict.model_id, &predict.input_vector),
            Request::ListModels => Ok(self.list_models()),
            Request::GetStatus => Ok(json!({
                "success": true, "node": self.ids[self.index], "isLeader": self.index == self.leader,
                "leader": self.ids[self.leader], "state": if self.index == self.leader { "leader" } else { "follower" },
                "term": 4, "commitIndex": 17
            })),
            Request::GetLeader => Ok(json!({"success": true, "leader": self.ids[self.leader], "isLeader": self.index == self.leader})),
        };
        let mut response = result.unwrap_or_else(|error| error.to_response(None));
        if let (Some(id), Some(object)) = (id, response.as_object_mut()) {
            object.insert("request_id".into(), Value::String(id.to_string()));
        }
        response
    }

    fn train(&self, model: &str, data: &str, request_id: Option<&str>) -> Result<Value, WireError> {
        wire::validate_name("model id", model)?;
        let (features, labels) = csv_shape(data)?;
        let mut state = self.state.lock().unwrap();
        let first_time = request_id.is_none_or(|id| state.applied_ids.insert(id.to_string()));
        if first_time {
            state.trains_applied += 1;
        }
        let model_info = MockModel { features, labels, dataset: format!("{model}.csv") };
        state.models.insert(model.to_string(), model_info);
        Ok(json!({
            "success": true, "message": format!("model {model} trained"), "modelId": model,
            "logIndex": 10 + state.trains_applied, "duration": 12.5, "accuracy": 0.97, "task": "classify",
            "features": features
        }))
    }

    fn predict(&self, model: &str, input: &[f64]) -> Result<Value, WireError> {
        let state = self.state.lock().unwrap();
        let Some(found) = state.models.get(model) else {
            return Err(WireError::new(ErrorCode::ModelNotFound, format!("model {model:?} not found")));
        };
        if input.len() != found.features {
            let message = format!("model {model} expects {} features, got {}", found.features, input.len());
            return Err(WireError::new(ErrorCode::DimensionMismatch, message));
        }
        let score = 1.0 / (1.0 + (-input.iter().sum::<f64>()).exp());
        let label = if score > 0.5 { found.labels.last() } else { found.labels.first() };
        Ok(json!({"success": true, "prediction": [score], "label": label, "model_id": model, "node": self.ids[self.index]}))
    }

    fn list_models(&self) -> Value {
        let state = self.state.lock().unwrap();
        let mut models: Vec<Value> = state
            .models
            .iter()
            .map(|(id, m)| {
                json!({"id": id, "dataset": m.dataset, "date": "2026-01-01T00:00:00Z", "status": "ready",
                       "accuracy": 0.97, "task": "classify", "features": m.features})
            })
            .collect();
        models.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        json!({"success": true, "models": models})
    }
}

/// Reads a Base64 CSV: returns the feature count and the sorted distinct labels, or the
/// INVALID_CSV error a node would send, with the line number.
fn csv_shape(data: &str) -> Result<(usize, Vec<String>), WireError> {
    let invalid = |message: String| WireError::new(ErrorCode::InvalidCsv, message);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| WireError::new(ErrorCode::InvalidPayload, format!("data_content is not Base64: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| invalid("the file is not UTF-8 text".into()))?;

    let mut columns = None;
    let mut labels = Vec::new();
    for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let numeric = cells.iter().all(|c| c.parse::<f64>().is_ok());
        if number == 0 && !numeric {
            columns = Some(cells.len());
            continue;
        }
        if cells.len() < 2 || !cells[..cells.len() - 1].iter().all(|c| c.parse::<f64>().is_ok()) {
            return Err(invalid(format!("line {}: expected numeric features and a label", number + 1)));
        }
        if columns.is_some_and(|n| n != cells.len()) {
            return Err(invalid(format!("line {}: expected {} columns, got {}", number + 1, columns.unwrap(), cells.len())));
        }
        columns = Some(cells.len());
        labels.push(cells[cells.len() - 1].to_string());
    }
    if labels.is_empty() {
        return Err(invalid("the CSV has no data rows".into()));
    }
    labels.sort();
    labels.dedup();
    Ok((columns.unwrap() - 1, labels))
}
