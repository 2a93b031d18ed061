//! The `client` binary against a mock cluster: output, JSON mode and exit codes.

mod support;

use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use client::wire::{ErrorCode, Request, WireError};
use serde_json::Value;
use support::{dead_addr, Action, MockCluster};
use tokio::process::Command;

const CIRCLES: &str = "x,y,class\n0.1,0.2,0\n2.9,0.3,1\n-1.0,0.1,0\n0.2,-3.1,1\n";

/// Runs the binary with `--nodes` set to `nodes`, failing the test after 60 s.
async fn run(nodes: &[String], args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_client"))
        .arg("--nodes")
        .arg(nodes.join(","))
        .args(["--attempts", "3"])
        .args(args)
        .env_remove("CLUSTER_NODES")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), child).await.expect("client finished in time").expect("client ran")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn write_csv(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test]
async fn train_then_predict() {
    let cluster = MockCluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(&dir, "c.csv", CIRCLES);

    let trained = run(&cluster.addrs, &["train", &csv, "--model", "m1", "--epochs", "3"]).await;
    assert_eq!(trained.status.code(), Some(0), "stderr: {}", stderr(&trained));
    assert!(stdout(&trained).contains("model m1 trained"), "stdout: {}", stdout(&trained));
    assert!(stderr(&trained).is_empty(), "no spinner when stderr is not a terminal: {}", stderr(&trained));

    let predicted = run(&cluster.addrs, &["predict", "--model", "m1", "-0.5,0.1"]).await;
    assert_eq!(predicted.status.code(), Some(0), "stderr: {}", stderr(&predicted));
    assert!(stdout(&predicted).starts_with("prediction: ["), "stdout: {}", stdout(&predicted));
    assert!(stdout(&predicted).contains("label: 0"));
}

#[tokio::test]
async fn json_output_parses() {
    let cluster = MockCluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(&dir, "c.csv", CIRCLES);
    run(&cluster.addrs, &["train", &csv, "--model", "m1"]).await;

    let listed = run(&cluster.addrs, &["--json", "models"]).await;
    let models: Value = serde_json::from_slice(&listed.stdout).expect("models JSON");
    assert_eq!(models[0]["id"], "m1");
    assert_eq!(models[0]["features"], 2);

    let predicted = run(&cluster.addrs, &["predict", "--json", "--model", "m1", "[1, 2]"]).await;
    let prediction: Value = serde_json::from_slice(&predicted.stdout).expect("prediction JSON");
    assert!(prediction["prediction"].is_array());
}

#[tokio::test]
async fn status_table_marks_dead_node() {
    let cluster = MockCluster::start(2).await;
    let nodes = vec![cluster.addrs[0].clone(), cluster.addrs[1].clone(), dead_addr().await];

    let output = run(&nodes, &["status"]).await;

    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NODE"), "header: {}", lines[0]);
    assert!(lines[1].starts_with("Node_A"), "row: {}", lines[1]);
    assert!(lines[1].contains("leader"), "row: {}", lines[1]);
    assert!(lines[1].ends_with("yes"), "row: {}", lines[1]);
    assert!(lines[2].contains("follower"), "row: {}", lines[2]);
    assert!(lines[3].ends_with("no"), "row: {}", lines[3]);
}

#[tokio::test]
async fn unreachable_cluster_exits_3() {
    let nodes = vec![dead_addr().await, dead_addr().await];

    let output = run(&nodes, &["models"]).await;

    assert_eq!(output.status.code(), Some(3));
    let message = stderr(&output);
    assert!(message.starts_with("error: no node reachable"), "stderr: {message}");
    assert!(message.contains("--nodes"), "the error says what to do: {message}");
    assert_eq!(message.lines().count(), 1, "one line: {message}");

    let status = run(&nodes, &["status"]).await;
    assert_eq!(status.status.code(), Some(3));
}

#[tokio::test]
async fn invalid_input_exits_2() {
    let cluster = MockCluster::start(1).await;

    let bad_vector = run(&cluster.addrs, &["predict", "--model", "m1", "1,abc"]).await;
    assert_eq!(bad_vector.status.code(), Some(2));
    assert!(stderr(&bad_vector).starts_with("error: "), "stderr: {}", stderr(&bad_vector));

    let missing_file = run(&cluster.addrs, &["train", "/nonexistent/data.csv", "--model", "m1"]).await;
    assert_eq!(missing_file.status.code(), Some(2));
    assert!(stderr(&missing_file).contains("/nonexistent/data.csv"));

    let bad_flag = run(&cluster.addrs, &["models", "--no-such-flag"]).await;
    assert_eq!(bad_flag.status.code(), Some(2));
    assert!(cluster.received().is_empty());
}

#[tokio::test]
async fn rejected_request_exits_1() {
    let cluster = MockCluster::start(1).await;

    let output = run(&cluster.addrs, &["predict", "--model", "missing", "1,2"]).await;

    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("MODEL_NOT_FOUND"), "stderr: {}", stderr(&output));
}

#[tokio::test]
async fn upload_stores_dataset() {
    let cluster = MockCluster::start(1).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = write_csv(&dir, "points.csv", CIRCLES);

    let output = run(&cluster.addrs, &["upload", &csv]).await;

    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    assert!(stdout(&output).contains("dataset points.csv stored"), "stdout: {}", stdout(&output));
}

#[tokio::test]
async fn stress_reports_mix() {
    let cluster = MockCluster::start(3).await;
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let report_arg = report_path.to_str().unwrap();

    let output = run(&cluster.addrs, &["stress", "-n", "200", "--concurrency", "4", "--mix", "0.1", "--report", report_arg]).await;

    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("total 200  successes 200  failures 0"), "stdout: {text}");
    assert!(text.contains("P99 MS"), "stdout: {text}");

    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["total"], 200);
    let trains = report["by_type"]["TRAIN"]["requests"].as_u64().unwrap();
    let predicts = report["by_type"]["PREDICT"]["requests"].as_u64().unwrap();
    assert_eq!(trains + predicts, 200);
    assert!(trains > 5, "{trains} trains at fraction 0.1");
    assert!(trains < 40, "{trains} trains at fraction 0.1");
    // One setup training plus the mix's TRAIN requests.
    assert_eq!(cluster.trains_applied() as u64, trains + 1);
}

#[tokio::test]
async fn stress_fails_when_requests_fail() {
    let script = Arc::new(|_node: usize, envelope: &client::wire::Envelope, _seen: usize| match envelope.request {
        Request::Predict(_) => Action::Reply(WireError::new(ErrorCode::PredictionFailed, "worker crashed").to_response(None)),
        _ => Action::Normal,
    });
    let cluster = MockCluster::start_scripted(1, script).await;

    let output = run(&cluster.addrs, &["stress", "-n", "20", "--mix", "0"]).await;

    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("failures 20"), "stdout: {}", stdout(&output));
    assert!(stdout(&output).contains("20 x "), "errors are grouped: {}", stdout(&output));
    assert!(stderr(&output).contains("20 of 20 requests failed"), "stderr: {}", stderr(&output));
}

#[tokio::test]
async fn stress_stops_at_time_limit() {
    let cluster = MockCluster::start(1).await;
    let started = std::time::Instant::now();

    let output = run(&cluster.addrs, &["--json", "stress", "-n", "10000000", "--mix", "0", "--max-seconds", "0.5"]).await;

    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    let report: Value = serde_json::from_slice(&output.stdout).expect("report JSON");
    let sent = report["total"].as_u64().unwrap();
    assert!(sent > 0, "no request was sent");
    assert_eq!(report["not_sent"].as_u64().unwrap(), 10_000_000 - sent);
}
