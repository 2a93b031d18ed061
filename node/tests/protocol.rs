//! The client protocol against hostile and unusual input: every bad request gets a
//! `success: false` response with a stable code, and the node keeps serving.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;
use common::{generate, Cluster};
use serde_json::{json, Value};

/// One connection that sends raw bytes and reads response lines.
struct Connection {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Connection {
    fn open(port: u16) -> Connection {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        Connection { writer: stream.try_clone().unwrap(), reader: BufReader::new(stream) }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("response {line:?} is not JSON: {e}"))
    }

    fn call(&mut self, line: &str) -> Value {
        self.send_raw(format!("{line}\n").as_bytes());
        self.read()
    }

    /// True when the node closed the connection.
    fn is_closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(self.reader.read_to_end(&mut rest), Ok(0))
    }
}

fn assert_code(response: &Value, code: &str) {
    assert_eq!(response["success"], false, "expected a failure, got {response}");
    assert_eq!(response["code"], code, "wrong code in {response}");
    assert!(response["error"].as_str().is_some_and(|e| !e.is_empty()), "no error message in {response}");
}

fn status_line() -> String {
    json!({"type": "GET_STATUS", "payload": {}}).to_string()
}

#[test]
fn malformed_requests_get_codes_and_connection_stays_usable() {
    let cluster = Cluster::start();
    let mut connection = Connection::open(cluster.ports[0].client);

    assert_code(&connection.call("hello"), "INVALID_JSON");
    assert_code(&connection.call(r#"{"payload": {}}"#), "INVALID_PAYLOAD");
    assert_code(&connection.call(r#"{"type": "DANCE", "payload": {}}"#), "UNKNOWN_TYPE");

    connection.send_raw(&[0xff, 0xfe, 0x7b, b'\n']);
    assert_code(&connection.read(), "INVALID_JSON");

    assert_eq!(connection.call(&status_line())["success"], true, "connection unusable after bad input");
}

#[test]
fn invalid_base64_replicates_nothing() {
    let cluster = Cluster::start();
    let request = json!({"type": "TRAIN_REQUEST", "payload": {"model_name": "bad64", "data_content": "@@not base64@@"}});
    let response = cluster.request(1, &request);
    assert_code(&response, "INVALID_PAYLOAD");

    let status = cluster.status(0).unwrap();
    let files = status["replication"]["filesOnDisk"].as_array().unwrap();
    assert!(files.is_empty(), "files were stored: {files:?}");
}

#[test]
fn hostile_model_names_are_rejected_without_files() {
    let cluster = Cluster::start();
    let csv = base64::engine::general_purpose::STANDARD.encode(b"x,y,label\n0,0,0\n1,1,1\n0,1,1\n1,0,0\n");
    let long = "a".repeat(300);
    // Valid as a model id, but the dataset name `<name>.csv` would exceed 128 characters.
    let near_limit = "b".repeat(126);

    for name in ["../../etc/passwd", "a/b", "", long.as_str(), ".hidden", near_limit.as_str()] {
        let request = json!({"type": "TRAIN_REQUEST", "payload": {"model_name": name, "data_content": csv}});
        let response = cluster.request(0, &request);
        assert_eq!(response["success"], false, "name {name:?} was accepted: {response}");
        assert_eq!(response["code"], "INVALID_NAME", "name {name:?}: {response}");
    }

    for i in 0..3 {
        let stored = common::directory_contents(&cluster.node_dir(i).join("datasets"));
        assert!(stored.is_empty(), "{} stored {stored:?}", common::NODE_IDS[i]);
    }
    assert!(!cluster.dir.path().join("etc").exists());
}

#[test]
fn prediction_errors_name_the_problem() {
    let cluster = Cluster::start();
    let circles = generate(cluster.dir.path(), "circles");
    assert_eq!(cluster.train(0, "two", &circles)["success"], true);

    assert_code(&cluster.predict(0, "missing", json!([1.0, 2.0])), "MODEL_NOT_FOUND");

    let mismatch = cluster.predict(1, "two", json!([1.0, 2.0, 3.0]));
    assert_code(&mismatch, "DIMENSION_MISMATCH");
    let message = mismatch["error"].as_str().unwrap();
    assert!(message.contains('3'), "message does not name the input size: {message}");
    assert!(message.contains('2'), "message does not name the model size: {message}");

    assert_code(&cluster.predict(2, "two", json!(["a", 1])), "INVALID_PAYLOAD");
    assert_code(&cluster.predict(2, "two", json!([])), "INVALID_PAYLOAD");
}

#[test]
fn pipelined_and_fragmented_requests() {
    let cluster = Cluster::start();
    let mut connection = Connection::open(cluster.ports[2].client);

    let two = format!("{}\n{}\n", status_line(), json!({"type": "GET_LEADER", "payload": {}}));
    connection.send_raw(two.as_bytes());
    let first = connection.read();
    let second = connection.read();
    assert_eq!(first["node"], "Node_C", "first response is not GET_STATUS: {first}");
    assert!(second.get("isLeader").is_some(), "second response has no isLeader: {second}");
    assert!(second.get("node").is_none(), "second response is GET_STATUS, not GET_LEADER: {second}");

    for byte in format!("{}\n", status_line()).bytes() {
        connection.send_raw(&[byte]);
        connection.writer.flush().unwrap();
    }
    assert_eq!(connection.read()["node"], "Node_C");
}

#[test]
fn oversized_line_closes_only_that_connection() {
    let cluster = Cluster::start_with(&["--max-line-bytes", "4096"]);
    let port = cluster.ports[0].client;

    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut partial = TcpStream::connect(("127.0.0.1", port)).unwrap();
    partial.write_all(b"{\"type\": \"GET_").unwrap();
    drop(partial);

    let mut connection = Connection::open(port);
    connection.send_raw(&vec![b'x'; 10_000]);
    connection.send_raw(b"\n");
    assert_code(&connection.read(), "LINE_TOO_LONG");
    assert!(connection.is_closed(), "connection stayed open after an oversized line");

    let mut fresh = Connection::open(port);
    assert_eq!(fresh.call(&status_line())["success"], true, "node stopped serving");
    idle.write_all(format!("{}\n", status_line()).as_bytes()).unwrap();
    let mut reader = BufReader::new(idle);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("\"success\":true"), "idle connection broken: {line}");
}

#[test]
fn broken_csv_is_rejected_and_not_stored() {
    let cluster = Cluster::start();
    let request = json!({"type": "TRAIN_REQUEST", "payload": {"model_name": "empty", "data_content": ""}});
    let response = cluster.request(0, &request);
    assert_code(&response, "INVALID_CSV");
    assert!(response["error"].as_str().unwrap().contains("empty"), "message does not say the file is empty: {response}");

    let header_only = base64::engine::general_purpose::STANDARD.encode(b"a,b,label\n");
    let request = json!({"type": "TRAIN_REQUEST", "payload": {"model_name": "header", "data_content": header_only}});
    let response = cluster.request(1, &request);
    assert_code(&response, "INVALID_CSV");

    let status = cluster.status(0).unwrap();
    assert!(status["replication"]["filesOnDisk"].as_array().unwrap().is_empty(), "a broken CSV was stored");
}
