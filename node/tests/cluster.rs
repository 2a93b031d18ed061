//! End-to-end behaviour of a real three-node cluster: training and prediction on every
//! node, surviving a SIGKILL of the leader, and a restarted node catching up.

mod common;

use std::time::Duration;

use common::{directory_contents, generate, wait_for, Cluster, NODE_IDS};
use serde_json::json;

#[test]
fn cluster_survives_leader_crash_and_catches_up() {
    let mut cluster = Cluster::start();
    let circles = generate(cluster.dir.path(), "circles");

    // Train through a follower, so the request is forwarded to the leader.
    let leader = cluster.wait_for_leader(None);
    let follower = (leader + 1) % 3;
    let trained = cluster.train(follower, "m1", &circles);
    assert_eq!(trained["success"], true, "training m1 failed: {trained}");
    assert_eq!(trained["modelId"], "m1");
    assert!(trained["accuracy"].as_f64().unwrap() > 0.95, "accuracy too low: {trained}");
    assert!(trained["logIndex"].as_u64().unwrap() > 0);

    // Every node predicts both classes right.
    for i in 0..3 {
        let inner = cluster.predict(i, "m1", json!([1.0, 0.0]));
        assert_eq!(inner["success"], true, "{} failed to predict: {inner}", NODE_IDS[i]);
        assert!(inner["prediction"][0].as_f64().unwrap() < 0.5, "inner point on {}: {inner}", NODE_IDS[i]);
        let outer = cluster.predict(i, "m1", json!("3.0,0.0"));
        assert!(outer["prediction"][0].as_f64().unwrap() > 0.5, "outer point on {}: {outer}", NODE_IDS[i]);
    }

    // Kill the leader; the survivors elect a new one and keep serving.
    cluster.kill_node(leader);
    let new_leader = cluster.wait_for_leader(Some(leader));
    assert_ne!(new_leader, leader);
    for i in (0..3).filter(|&i| i != leader) {
        let prediction = cluster.predict(i, "m1", json!([1.0, 0.0]));
        assert_eq!(prediction["success"], true, "{} failed after failover: {prediction}", NODE_IDS[i]);
    }

    // A second model trains with one node down.
    let survivor = (0..3).find(|&i| i != leader && i != new_leader).unwrap();
    let second = cluster.train(survivor, "m2", &circles);
    assert_eq!(second["success"], true, "training m2 failed: {second}");

    // The old leader restarts, catches up and serves both models.
    cluster.start_node(leader);
    let target = cluster.status(new_leader).unwrap()["raft"]["commitIndex"].as_u64().unwrap();
    wait_for("the restarted node to apply every committed entry", Duration::from_secs(20), || {
        let applied = cluster.status(leader)?["raft"]["appliedIndex"].as_u64()?;
        (applied >= target).then_some(())
    });
    for model in ["m1", "m2"] {
        let prediction = cluster.predict(leader, model, json!([3.0, 0.0]));
        assert_eq!(prediction["success"], true, "restarted node cannot predict {model}: {prediction}");
    }
    let models = cluster.request(leader, &json!({"type": "LIST_MODELS"}));
    assert_eq!(models["models"].as_array().unwrap().len(), 2, "{models}");

    // Every node's datasets and models end byte-identical.
    for sub in ["datasets", "models"] {
        let reference = directory_contents(&cluster.node_dir(0).join(sub));
        assert!(!reference.is_empty(), "{sub} of Node_A is empty");
        for i in 1..3 {
            let other = directory_contents(&cluster.node_dir(i).join(sub));
            let names: Vec<&String> = other.iter().map(|(name, _)| name).collect();
            assert!(reference == other, "{sub} of {} differs from Node_A's (has {names:?})", NODE_IDS[i]);
        }
    }
}

#[test]
fn status_and_leader_requests_agree() {
    let cluster = Cluster::start();
    let leader = cluster.wait_for_leader(None);
    for i in 0..3 {
        let status = cluster.request(i, &json!({"type": "GET_STATUS", "payload": {}}));
        assert_eq!(status["success"], true);
        assert_eq!(status["node"], NODE_IDS[i]);
        assert_eq!(status["leader"], NODE_IDS[leader]);
        assert_eq!(status["isLeader"], i == leader);

        let reply = cluster.request(i, &json!({"type": "GET_LEADER", "payload": {}}));
        assert_eq!(reply["leader"], NODE_IDS[leader]);
    }
}

#[test]
fn monitor_serves_page_metrics_and_health() {
    let cluster = Cluster::start();
    let port = cluster.ports[0].http;

    let (status, page) = common::http_get(port, "/?lang=es").unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("Node_A"), "page does not name the node");
    assert!(page.contains("Monitor Raft"), "Spanish page text missing");

    let status = cluster.status(0).unwrap();
    for field in ["role", "term", "leader", "votedFor", "commitIndex"] {
        assert!(status["raft"].get(field).is_some(), "raft.{field} missing: {status}");
    }
    for field in ["logEntries", "commitIndex", "filesOnDisk"] {
        assert!(status["replication"].get(field).is_some(), "replication.{field} missing: {status}");
    }

    let (code, metrics) = common::http_get(port, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("raft_term{node=\"Node_A\"}"), "{metrics}");
    assert!(metrics.contains("raft_fsync_seconds_bucket"), "{metrics}");

    let (code, _) = common::http_get(port, "/health").unwrap();
    assert_eq!(code, 200);
}
