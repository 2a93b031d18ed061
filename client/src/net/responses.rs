//! Typed views of the success responses, read leniently: fields a node may omit are `Option`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ClientError;

/// The result of a TRAIN_REQUEST.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainResult {
    #[serde(rename = "modelId")]
    pub model_id: String,
    #[serde(default)]
    pub message: String,
    #[serde(rename = "logIndex", default)]
    pub log_index: Option<u64>,
    /// Training time reported by the cluster, in milliseconds.
    #[serde(default)]
    pub duration: Option<f64>,
    /// Every other field: accuracy, loss, task, features and whatever the trainer reports.
    #[serde(flatten)]
    pub metrics: Map<String, Value>,
}

/// The result of an UPLOAD_DATASET.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UploadResult {
    pub dataset: String,
    #[serde(rename = "logIndex", default)]
    pub log_index: Option<u64>,
}

/// The result of a PREDICT_REQUEST.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PredictResult {
    pub prediction: Vec<f64>,
    /// The class label of a classifier, as the training data spelled it.
    #[serde(default)]
    pub label: Option<Value>,
    #[serde(default)]
    pub model_id: Option<String>,
    /// The node that ran the model.
    #[serde(default)]
    pub node: Option<String>,
}

/// One node's GET_STATUS response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: String,
    #[serde(rename = "isLeader", default)]
    pub is_leader: bool,
    #[serde(default)]
    pub leader: Option<String>,
    /// Raft role: `leader`, `follower`, `candidate` or `precandidate`.
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub term: Option<u64>,
    #[serde(rename = "commitIndex", default)]
    pub commit_index: Option<u64>,
}

/// A GET_LEADER response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaderInfo {
    #[serde(default)]
    pub leader: Option<String>,
    #[serde(rename = "isLeader", default)]
    pub is_leader: bool,
}

/// Decodes a success response into `T`, dropping the envelope fields first.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(node: &str, mut body: Map<String, Value>) -> Result<T, ClientError> {
    body.remove("success");
    body.remove("request_id");
    serde_json::from_value(Value::Object(body))
        .map_err(|e| ClientError::InvalidResponse { node: node.to_string(), detail: e.to_string() })
}
