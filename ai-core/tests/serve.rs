//! `ai-core serve`: JSON lines in, one response line per request out.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use common::{ai_core, data_file, stderr_text};
use serde_json::{json, Value};

/// A running `serve` process; killed when dropped.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    responses: Receiver<String>,
}

impl Worker {
    fn start(models: &Path) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ai-core"))
            .args(["serve", "--models-dir", models.to_str().unwrap()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, responses) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Worker {
            child,
            stdin,
            responses,
        }
    }

    /// Sends one line and returns the parsed response line.
    fn request(&mut self, line: &str) -> Value {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let response = self
            .responses
            .recv_timeout(Duration::from_secs(20))
            .expect("a response within 20 s");
        serde_json::from_str(&response)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {response}"))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn train(csv: &Path, id: &str, models: &Path) {
    let output = ai_core(&[
        "train",
        csv.to_str().unwrap(),
        id,
        "--models-dir",
        models.to_str().unwrap(),
        "--epochs",
        "30",
    ]);
    assert!(output.status.success(), "{}", stderr_text(&output));
}

#[test]
fn serve_predicts_batches_with_labels() {
    let dir = tempfile::tempdir().unwrap();
    train(&data_file("quoted_text_labels.csv"), "q", dir.path());
    let mut worker = Worker::start(dir.path());

    let request = json!({"id": 7, "model_id": "q", "inputs": [[1.6, 0.25], [5.4, 2.0]]});
    let response = worker.request(&request.to_string());
    assert_eq!(response["id"], 7);
    assert_eq!(response["success"], true);
    assert_eq!(response["predictions"].as_array().unwrap().len(), 2);
    assert_eq!(response["predictions"][0].as_array().unwrap().len(), 3);
    assert_eq!(response["labels"], json!(["small, pale", "large, dark"]));
}

#[test]
fn serve_errors_keep_worker_running() {
    let dir = tempfile::tempdir().unwrap();
    train(&data_file("crlf_line_endings.csv"), "m1", dir.path());
    let mut worker = Worker::start(dir.path());

    let cases = [
        ("hello", "INVALID_JSON"),
        (
            r#"{"id": "a", "model_id": "absent", "inputs": [[1, 2]]}"#,
            "MODEL_NOT_FOUND",
        ),
        (
            r#"{"id": "b", "model_id": "m1", "inputs": [[1, 2, 3]]}"#,
            "DIMENSION_MISMATCH",
        ),
        (
            r#"{"id": "c", "model_id": "m1", "inputs": [["a", 1]]}"#,
            "INVALID_PAYLOAD",
        ),
        (
            r#"{"id": "d", "model_id": "m1", "inputs": []}"#,
            "INVALID_PAYLOAD",
        ),
        (
            r#"{"id": "e", "model_id": "../x", "inputs": [[1, 2]]}"#,
            "INVALID_NAME",
        ),
        (r#"{"id": "f", "inputs": [[1, 2]]}"#, "INVALID_PAYLOAD"),
    ];
    for (line, code) in cases {
        let response = worker.request(line);
        assert_eq!(response["success"], false, "{line}");
        assert_eq!(response["code"], code, "{line}");
        assert!(
            response["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{line}"
        );
    }
    let mismatch = worker.request(r#"{"id": "g", "model_id": "m1", "inputs": [[1, 2, 3]]}"#);
    assert_eq!(
        mismatch["error"],
        "input has 3 values but model m1 expects 2"
    );
    assert_eq!(mismatch["id"], "g");

    let ok = worker.request(r#"{"id": "h", "model_id": "m1", "inputs": [[0, 1]]}"#);
    assert_eq!(ok["success"], true);
    assert_eq!(ok["labels"], json!(["1"]));
}

#[test]
fn serve_reloads_changed_model_file() {
    let dir = tempfile::tempdir().unwrap();
    train(&data_file("crlf_line_endings.csv"), "m", dir.path());
    let mut worker = Worker::start(dir.path());
    let two_features = worker.request(r#"{"id": 1, "model_id": "m", "inputs": [[0, 1]]}"#);
    assert_eq!(two_features["success"], true);

    train(&data_file("regression_linear.csv"), "m", dir.path());
    let one_feature = worker.request(r#"{"id": 2, "model_id": "m", "inputs": [[3]]}"#);
    assert_eq!(one_feature["success"], true, "{one_feature}");
    assert_eq!(one_feature["labels"], json!([null]));
    let value = one_feature["predictions"][0][0].as_f64().unwrap();
    assert!((value - 7.0).abs() < 1.0, "predicted {value}");

    std::fs::remove_file(dir.path().join("m.model")).unwrap();
    let removed = worker.request(r#"{"id": 3, "model_id": "m", "inputs": [[3]]}"#);
    assert_eq!(removed["code"], "MODEL_NOT_FOUND");
}

#[test]
fn serve_exits_at_end_of_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ai-core"))
        .args(["serve", "--models-dir", dir.path().to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"\n{\"id\":1}\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        text.lines().count(),
        1,
        "blank lines get no response: {text}"
    );
}

#[test]
fn serve_checks_csv_files() {
    let models = tempfile::tempdir().unwrap();
    let mut worker = Worker::start(models.path());

    let ragged = data_file("ragged_rows.csv");
    let request = json!({"id": 1, "check_csv": ragged.to_str().unwrap()});
    let summary = worker.request(&request.to_string());
    assert_eq!(summary["success"], true, "{summary}");
    assert_eq!(summary["id"], 1);
    assert_eq!(summary["skippedLines"], json!([52, 53]), "{summary}");

    let header_only = data_file("header_only.csv");
    let request = json!({"id": 2, "check_csv": header_only.to_str().unwrap()});
    let failure = worker.request(&request.to_string());
    assert_eq!(failure["success"], false, "{failure}");
    assert_eq!(failure["code"], "INVALID_CSV", "{failure}");

    let request = json!({"id": 3, "check_csv": ragged.to_str().unwrap(), "task": "dance"});
    assert_eq!(worker.request(&request.to_string())["code"], "INVALID_PAYLOAD");
}
