//! Log compaction on real processes: a node that was down while the others compacted
//! their logs catches up through InstallSnapshot, and a node restarts from its own snapshot.

mod common;

use std::time::Duration;

use common::{directory_contents, generate, http_get, wait_for, Cluster, NODE_IDS};
use serde_json::json;

fn counter(cluster: &Cluster, node: usize, name: &str) -> Option<u64> {
    let (_, text) = http_get(cluster.ports[node].http, "/metrics")?;
    let line = text.lines().find(|line| line.starts_with(name))?;
    line.rsplit(' ').next()?.parse().ok()
}

#[test]
fn lagging_node_catches_up_from_snapshot() {
    let mut cluster = Cluster::start_with(&["--snapshot-entries", "4"]);
    let circles = generate(cluster.dir.path(), "circles");
    let leader = cluster.wait_for_leader(None);
    let lagging = (leader + 1) % 3;
    cluster.kill_node(lagging);

    for model in ["s1", "s2", "s3", "s4"] {
        let trained = cluster.train(leader, model, &circles);
        assert_eq!(trained["success"], true, "training {model} failed: {trained}");
    }
    wait_for("the leader to take a snapshot", Duration::from_secs(10), || {
        (counter(&cluster, leader, "raft_snapshots_taken_total")? > 0).then_some(())
    });
    let status = cluster.status(leader).unwrap();
    assert!(status["raft"]["snapshot"]["index"].as_u64().unwrap() > 0, "no snapshot in {status}");

    cluster.start_node(lagging);
    let target = cluster.status(leader).unwrap()["raft"]["commitIndex"].as_u64().unwrap();
    wait_for("the lagging node to catch up", Duration::from_secs(30), || {
        let applied = cluster.status(lagging)?["raft"]["appliedIndex"].as_u64()?;
        (applied >= target).then_some(())
    });
    assert!(counter(&cluster, lagging, "raft_snapshots_installed_total").unwrap() >= 1, "no snapshot was installed");

    for model in ["s1", "s4"] {
        let prediction = cluster.predict(lagging, model, json!([3.0, 0.0]));
        assert_eq!(prediction["success"], true, "{model} on the caught-up node: {prediction}");
    }
    for sub in ["datasets", "models"] {
        let reference = directory_contents(&cluster.node_dir(leader).join(sub));
        let caught_up = directory_contents(&cluster.node_dir(lagging).join(sub));
        assert!(reference == caught_up, "{sub} of {} differs from the leader's", NODE_IDS[lagging]);
    }

    // A restart reads the node's own snapshot back.
    cluster.kill_node(leader);
    cluster.start_node(leader);
    let target = cluster.status(lagging).unwrap()["raft"]["commitIndex"].as_u64().unwrap();
    wait_for("the restarted node to apply from its snapshot", Duration::from_secs(30), || {
        let applied = cluster.status(leader)?["raft"]["appliedIndex"].as_u64()?;
        (applied >= target).then_some(())
    });
    let models = cluster.request(leader, &json!({"type": "LIST_MODELS"}));
    assert_eq!(models["models"].as_array().unwrap().len(), 4, "{models}");
}
