//! The network client against mock nodes: failover, leader hints, retries and timeouts.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use client::net::{Client, ClientConfig, ClientError};
use client::wire::{ErrorCode, TrainOptions, WireError};
use serde_json::json;
use support::{dead_addr, Action, MockCluster};

const CIRCLES: &[u8] = b"x,y,class\n0.1,0.2,0\n2.9,0.3,1\n-1.0,0.1,0\n0.2,-3.1,1\n";

fn quick_config(nodes: Vec<String>) -> ClientConfig {
    ClientConfig {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        connect_timeout: Duration::from_secs(2),
        ..ClientConfig::with_nodes(nodes)
    }
}

fn kinds_on(cluster: &MockCluster, kind: &str) -> Vec<usize> {
    cluster.received().iter().filter(|r| r.kind == kind).map(|r| r.node).collect()
}

#[tokio::test]
async fn reads_rotate_over_nodes() {
    let cluster = MockCluster::start(3).await;
    let client = Client::new(quick_config(cluster.addrs.clone())).unwrap();

    for _ in 0..6 {
        client.list_models().await.unwrap();
    }

    let mut per_node = [0; 3];
    for node in kinds_on(&cluster, "LIST_MODELS") {
        per_node[node] += 1;
    }
    assert_eq!(per_node, [2, 2, 2]);
}

#[tokio::test]
async fn round_robin_skips_dead_node() {
    let cluster = MockCluster::start(1).await;
    let nodes = vec![dead_addr().await, cluster.addrs[0].clone()];
    let client = Client::new(quick_config(nodes)).unwrap();

    for _ in 0..4 {
        let models = client.list_models().await.expect("the live node should answer");
        assert!(models.is_empty());
    }
    assert_eq!(kinds_on(&cluster, "LIST_MODELS").len(), 4);
}

#[tokio::test]
async fn follows_not_leader_hint() {
    // Nodes 0 and 1 have no leader to forward to and name Node_C.
    let script = Arc::new(|node: usize, envelope: &client::wire::Envelope, _seen: usize| {
        if node < 2 && envelope.request.is_write() {
            return Action::Reply(WireError::not_leader(Some("Node_C".into())).to_response(envelope.request_id.as_deref()));
        }
        Action::Normal
    });
    let cluster = MockCluster::start_scripted(3, script).await;
    let client = Client::new(quick_config(cluster.addrs.clone())).unwrap();

    let result = client.train("m1", CIRCLES, &TrainOptions::default()).await.unwrap();

    assert_eq!(result.model_id, "m1");
    assert_eq!(kinds_on(&cluster, "TRAIN_REQUEST"), vec![0, 2], "the retry should go straight to the named leader");

    // The leader is remembered: the next write starts there.
    client.train("m2", CIRCLES, &TrainOptions::default()).await.unwrap();
    assert_eq!(kinds_on(&cluster, "TRAIN_REQUEST"), vec![0, 2, 2]);
}

#[tokio::test]
async fn dropped_connection_retried_with_same_id() {
    // The first node applies the training, then dies before it can respond.
    let script = Arc::new(|_node: usize, envelope: &client::wire::Envelope, seen: usize| {
        if envelope.request.is_write() && seen == 0 {
            Action::NormalThenDrop
        } else {
            Action::Normal
        }
    });
    let cluster = MockCluster::start_scripted(2, script).await;
    let client = Client::new(quick_config(cluster.addrs.clone())).unwrap();

    client.train("m1", CIRCLES, &TrainOptions::default()).await.unwrap();

    let trains: Vec<_> = cluster.received().into_iter().filter(|r| r.kind == "TRAIN_REQUEST").collect();
    assert_eq!(trains.len(), 2);
    assert!(trains[0].request_id.is_some());
    assert_eq!(trains[0].request_id, trains[1].request_id);
    assert_eq!(cluster.trains_applied(), 1);
}

#[tokio::test]
async fn distinct_requests_get_distinct_ids() {
    let cluster = MockCluster::start(1).await;
    let client = Client::new(quick_config(cluster.addrs.clone())).unwrap();

    client.train("m1", CIRCLES, &TrainOptions::default()).await.unwrap();
    client.train("m1", CIRCLES, &TrainOptions::default()).await.unwrap();

    let ids: Vec<_> = cluster.received().into_iter().map(|r| r.request_id).collect();
    assert_ne!(ids[0], ids[1]);
    assert_eq!(cluster.trains_applied(), 2);
}

#[tokio::test]
async fn gives_up_when_no_leader() {
    let script = Arc::new(|_node: usize, envelope: &client::wire::Envelope, _seen: usize| {
        Action::Reply(WireError::not_leader(None).to_response(envelope.request_id.as_deref()))
    });
    let cluster = MockCluster::start_scripted(3, script).await;
    let config = ClientConfig { max_attempts: 5, ..quick_config(cluster.addrs.clone()) };
    let client = Client::new(config).unwrap();

    let error = client.train("m1", CIRCLES, &TrainOptions::default()).await.unwrap_err();

    let ClientError::NoLeader { attempts, last } = &error else { panic!("expected NoLeader, got {error:?}") };
    assert_eq!(*attempts, 5);
    assert_eq!(last.code, ErrorCode::NotLeader);
    assert_eq!(kinds_on(&cluster, "TRAIN_REQUEST").len(), 5);
    assert!(error.to_string().contains("5 attempts"), "message: {error}");
}

#[tokio::test]
async fn gives_up_when_all_nodes_dead() {
    let nodes = vec![dead_addr().await, dead_addr().await];
    let config = ClientConfig { max_attempts: 4, ..quick_config(nodes.clone()) };
    let client = Client::new(config).unwrap();
    let started = Instant::now();

    let error = client.list_models().await.unwrap_err();

    assert!(error.is_unreachable(), "expected Unreachable, got {error:?}");
    let message = error.to_string();
    assert!(message.contains("4 attempts"), "message: {message}");
    assert!(message.contains(&nodes[0]), "message: {message}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn other_errors_are_not_retried() {
    let cluster = MockCluster::start(3).await;
    let client = Client::new(quick_config(cluster.addrs.clone())).unwrap();

    let error = client.predict("missing", &[1.0, 2.0]).await.unwrap_err();

    assert_eq!(error.code(), Some(ErrorCode::ModelNotFound));
    assert_eq!(kinds_on(&cluster, "PREDICT_REQUEST").len(), 1);
}

#[tokio::test]
async fn slow_response_times_out() {
    let script = Arc::new(|_node: usize, _envelope: &client::wire::Envelope, _seen: usize| Action::Hang);
    let cluster = MockCluster::start_scripted(1, script).await;
    let config = ClientConfig { request_timeout: Duration::from_millis(200), ..quick_config(cluster.addrs.clone()) };
    let client = Client::new(config).unwrap();
    let started = Instant::now();

    let error = client.predict("m1", &[1.0]).await.unwrap_err();

    assert!(matches!(error, ClientError::Timeout { .. }), "expected Timeout, got {error:?}");
    assert!(error.to_string().contains("0.2 s"), "message: {error}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn invalid_response_reported() {
    let script = Arc::new(|_node: usize, _envelope: &client::wire::Envelope, _seen: usize| {
        Action::Reply(json!(["not", "an", "object"]))
    });
    let cluster = MockCluster::start_scripted(1, script).await;
    let client = Client::new(quick_config(cluster.addrs.clone())).unwrap();

    let error = client.list_models().await.unwrap_err();

    assert!(matches!(error, ClientError::InvalidResponse { .. }), "got {error:?}");
}

#[tokio::test]
async fn invalid_names_rejected_locally() {
    let cluster = MockCluster::start(1).await;
    let client = Client::new(quick_config(cluster.addrs.clone())).unwrap();

    let error = client.train("../etc", CIRCLES, &TrainOptions::default()).await.unwrap_err();

    assert!(matches!(error, ClientError::InvalidInput(_)), "got {error:?}");
    assert!(cluster.received().is_empty());
}

#[tokio::test]
async fn concurrent_tasks_get_their_own_responses() {
    let cluster = MockCluster::start(3).await;
    let client = Client::new(quick_config(cluster.addrs.clone())).unwrap();
    client.train("m1", CIRCLES, &TrainOptions::default()).await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let x = i as f64 / 8.0 - 2.0;
            let result = client.predict("m1", &[x, 0.0]).await.unwrap();
            (x, result.prediction[0])
        }));
    }
    for task in tasks {
        let (x, score) = task.await.unwrap();
        let expected = 1.0 / (1.0 + (-x).exp());
        assert!((score - expected).abs() < 1e-12, "input {x} got the score {score} of another request");
    }
}

#[tokio::test]
async fn status_all_marks_unreachable_nodes() {
    let cluster = MockCluster::start(2).await;
    let nodes = vec![cluster.addrs[0].clone(), dead_addr().await, cluster.addrs[1].clone()];
    let client = Client::new(quick_config(nodes)).unwrap();

    let statuses = client.status_all().await;

    assert_eq!(statuses.len(), 3);
    let first = statuses[0].1.as_ref().unwrap();
    assert_eq!(first.node, "Node_A");
    assert!(first.is_leader);
    assert_eq!(first.commit_index, Some(17));
    assert!(statuses[1].1.as_ref().unwrap_err().is_unreachable());
    assert_eq!(statuses[2].1.as_ref().unwrap().node, "Node_B");
}

#[tokio::test]
async fn leader_query_returns_leader() {
    let cluster = MockCluster::start(3).await;
    let client = Client::new(quick_config(cluster.addrs.clone())).unwrap();

    let info = client.leader().await.unwrap();

    assert_eq!(info.leader.as_deref(), Some("Node_A"));
}

#[tokio::test]
async fn closed_idle_connection_reopened() {
    let script = Arc::new(|_node: usize, _envelope: &client::wire::Envelope, _seen: usize| Action::NormalThenClose);
    let cluster = MockCluster::start_scripted(1, script).await;
    // One attempt only: the second request succeeds only if the client notices that its
    // pooled connection was closed and opens a new one on the same attempt.
    let config = ClientConfig { max_attempts: 1, ..quick_config(cluster.addrs.clone()) };
    let client = Client::new(config).unwrap();

    client.list_models().await.unwrap();
    client.list_models().await.expect("the closed pooled connection is replaced");

    assert_eq!(kinds_on(&cluster, "LIST_MODELS").len(), 2);
}
