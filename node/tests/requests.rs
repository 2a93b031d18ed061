//! Writes that carry a request id apply once, and datasets can be uploaded and trained on later.

mod common;

use base64::Engine;
use common::{generate, Cluster};
use serde_json::json;

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn retried_train_applies_once() {
    let cluster = Cluster::start();
    let circles = generate(cluster.dir.path(), "circles");
    let request = json!({
        "type": "TRAIN_REQUEST",
        "request_id": "retry-1",
        "payload": {"model_name": "once", "data_content": encode(&circles), "epochs": 20},
    });

    let leader = cluster.wait_for_leader(None);
    let first = cluster.request(0, &request);
    assert_eq!(first["success"], true, "{first}");
    let commit_after_first = cluster.status(leader).unwrap()["raft"]["commitIndex"].as_u64().unwrap();

    let retry = cluster.request(1, &request);
    assert_eq!(retry["success"], true, "{retry}");
    assert_eq!(retry["logIndex"], first["logIndex"], "the retry trained again: {retry}");
    assert_eq!(retry["request_id"], "retry-1");

    let commit_after_retry = cluster.status(leader).unwrap()["raft"]["commitIndex"].as_u64().unwrap();
    assert_eq!(commit_after_retry, commit_after_first, "the retry added log entries");
}

#[test]
fn concurrent_duplicates_train_once() {
    let cluster = Cluster::start();
    let circles = generate(cluster.dir.path(), "circles");
    let leader = cluster.wait_for_leader(None);
    let request = json!({
        "type": "TRAIN_REQUEST",
        "request_id": "twin",
        "payload": {"model_name": "twin", "data_content": encode(&circles), "epochs": 200},
    });

    let (first, second) = std::thread::scope(|scope| {
        let a = scope.spawn(|| cluster.request(leader, &request));
        let b = scope.spawn(|| cluster.request((leader + 1) % 3, &request));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(first["success"], true, "{first}");
    assert_eq!(second["success"], true, "{second}");
    assert_eq!(first["logIndex"], second["logIndex"], "the duplicates trained twice");

    let status = cluster.status(leader).unwrap();
    let models = status["replication"]["recentEntries"].as_array().unwrap();
    let stored = models.iter().filter(|e| e["kind"] == "STORE_MODEL").count();
    assert_eq!(stored, 1, "log has {stored} STORE_MODEL entries: {models:?}");
}

#[test]
fn uploaded_dataset_trains_by_name() {
    let cluster = Cluster::start();
    let xor = generate(cluster.dir.path(), "xor");

    let upload = json!({"type": "UPLOAD_DATASET", "request_id": "up-1", "payload": {"name": "xor.csv", "data_content": encode(&xor)}});
    let stored = cluster.request(2, &upload);
    assert_eq!(stored["success"], true, "{stored}");
    assert_eq!(stored["dataset"], "xor.csv");

    let again = cluster.request(1, &upload);
    assert_eq!(again["logIndex"], stored["logIndex"], "a retried upload was stored twice: {again}");

    let train = json!({"type": "TRAIN_REQUEST", "payload": {"model_name": "xor-model", "dataset": "xor.csv"}});
    let leader = cluster.wait_for_leader(None);
    let trained = cluster.request((leader + 1) % 3, &train);
    assert_eq!(trained["success"], true, "{trained}");
    assert!(trained.get("request_id").is_none(), "a request without an id got one back: {trained}");
    assert_eq!(trained["dataset"], "xor.csv");

    for (input, expected) in [([0.0, 0.0], 0.0), ([0.0, 1.0], 1.0), ([1.0, 0.0], 1.0), ([1.0, 1.0], 0.0)] {
        let prediction = cluster.predict(0, "xor-model", json!(input));
        let value = prediction["prediction"][0].as_f64().unwrap();
        assert!((value - expected).abs() < 0.5, "xor{input:?} predicted {value}");
    }
}

#[test]
fn training_on_missing_dataset_fails_cleanly() {
    let cluster = Cluster::start();
    let train = json!({"type": "TRAIN_REQUEST", "payload": {"model_name": "m", "dataset": "nope.csv"}});
    let response = cluster.request(0, &train);
    assert_eq!(response["success"], false);
    assert_eq!(response["code"], "DATASET_NOT_FOUND", "{response}");
}
