//! Leader failover: SIGKILL the leader, then time how long the survivors take to elect a
//! new leader and to commit the next write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::harness::{Cluster, Connection, NODE_IDS};
use crate::writes::upload_line;

/// Interval between GET_STATUS polls of each survivor.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Time after the kill by which a trial must have a new leader and a committed write.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Trial {
    pub killed: String,
    pub new_leader: String,
    /// From SIGKILL until a survivor's GET_STATUS reports it leader at a higher term.
    pub leader_visible: Duration,
    /// From SIGKILL until an UPLOAD_DATASET sent to the survivors succeeds.
    pub write_committed: Duration,
    pub write_attempts: u32,
    /// From the restart of the killed node until it has applied the leader's commit index.
    pub catch_up: Duration,
}

/// Runs `trials` kill-and-restart rounds; each restarts the killed node and waits for it
/// to catch up before the next one starts.
pub fn run_trials(cluster: &mut Cluster, trials: usize) -> Result<Vec<Trial>> {
    let mut results = Vec::new();
    for trial in 0..trials {
        let leader = cluster.wait_for_leader(Duration::from_secs(20))?;
        cluster.wait_for_caught_up(leader, Duration::from_secs(30))?;
        let old_term = term(cluster, leader)?;

        // Spread the kills over the 50 ms heartbeat interval, so that trials do not all
        // land at the same point of the followers' election timers.
        std::thread::sleep(Duration::from_millis(100 + (trial as u64 * 37) % 50));

        let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        let survivor_ports: Vec<u16> = survivors.iter().map(|&i| cluster.ports[i].client).collect();
        let killed_at = cluster.kill_node(leader)?;

        let found = Arc::new(AtomicBool::new(false));
        let pollers: Vec<_> = survivors
            .iter()
            .map(|&i| {
                let port = cluster.ports[i].client;
                let found = found.clone();
                std::thread::spawn(move || poll_until_leader(port, old_term, killed_at, &found).map(|visible| (i, visible)))
            })
            .collect();
        let writer = std::thread::spawn(move || write_until_committed(&survivor_ports, trial, killed_at));
        let (new_leader, leader_visible) = first_leader(pollers)?;
        let (write_committed, write_attempts) =
            writer.join().map_err(|_| anyhow::anyhow!("the failover writer thread panicked"))??;

        cluster.start_node(leader)?;
        let restarted = Instant::now();
        cluster.wait_for_caught_up(new_leader, Duration::from_secs(60))?;
        let catch_up = restarted.elapsed();

        let result = Trial {
            killed: NODE_IDS[leader].to_string(),
            new_leader: NODE_IDS[new_leader].to_string(),
            leader_visible,
            write_committed,
            write_attempts,
            catch_up,
        };
        eprintln!(
            "failover trial {}: killed {}, {} leader after {:.0} ms, write committed after {:.0} ms ({} attempts)",
            trial + 1,
            result.killed,
            result.new_leader,
            leader_visible.as_secs_f64() * 1000.0,
            write_committed.as_secs_f64() * 1000.0,
            write_attempts
        );
        results.push(result);
    }
    Ok(results)
}

fn term(cluster: &Cluster, node: usize) -> Result<u64> {
    match cluster.status(node).and_then(|s| s["raft"]["term"].as_u64()) {
        Some(term) => Ok(term),
        None => bail!("{} did not report its term", NODE_IDS[node]),
    }
}

/// Polls one survivor with GET_STATUS on one connection until it reports itself leader
/// at a term above `old_term`, then sets `found` and returns the time since the kill.
/// Returns `None` once another poller has set `found`, or after [`TRIAL_TIMEOUT`].
fn poll_until_leader(port: u16, old_term: u64, killed_at: Instant, found: &AtomicBool) -> Option<Duration> {
    let mut connection = None;
    while killed_at.elapsed() < TRIAL_TIMEOUT && !found.load(Ordering::Relaxed) {
        if connection.is_none() {
            connection = Connection::open(port, Duration::from_millis(500), Duration::from_secs(5)).ok();
        }
        if let Some(open) = connection.as_mut() {
            match open.request(r#"{"type":"GET_STATUS","payload":{}}"#) {
                Ok(status) if status["isLeader"] == json!(true) && status["term"].as_u64() > Some(old_term) => {
                    let visible = killed_at.elapsed();
                    found.store(true, Ordering::Relaxed);
                    return Some(visible);
                }
                Ok(_) => {}
                Err(_) => connection = None,
            }
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    None
}

/// Waits for the pollers and returns the survivor that reported leadership first.
fn first_leader(pollers: Vec<std::thread::JoinHandle<Option<(usize, Duration)>>>) -> Result<(usize, Duration)> {
    let mut first: Option<(usize, Duration)> = None;
    for poller in pollers {
        let reported = poller.join().map_err(|_| anyhow::anyhow!("a leader poller thread panicked"))?;
        if let Some((node, visible)) = reported {
            if first.is_none_or(|(_, earliest)| visible < earliest) {
                first = Some((node, visible));
            }
        }
    }
    first.ok_or_else(|| anyhow::anyhow!("no survivor became leader within {TRIAL_TIMEOUT:?} of the kill"))
}

/// Sends one upload, with the same request id each time, to the survivors in turn until
/// one succeeds. Returns the time since the kill and the number of attempts.
fn write_until_committed(ports: &[u16], trial: usize, killed_at: Instant) -> Result<(Duration, u32)> {
    let line = upload_line(&format!("failover-{trial}.csv"), &format!("failover-{trial}"), 1_000_000 + trial as u64);
    let mut attempts = 0u32;
    let mut last_error = Value::Null;
    while killed_at.elapsed() < TRIAL_TIMEOUT {
        let port = ports[attempts as usize % ports.len()];
        attempts += 1;
        let response = Connection::open(port, Duration::from_millis(500), Duration::from_secs(35))
            .and_then(|mut connection| connection.request(&line));
        match response {
            Ok(response) if response["success"] == json!(true) => return Ok((killed_at.elapsed(), attempts)),
            Ok(response) => last_error = response,
            Err(e) => last_error = json!(e.to_string()),
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    bail!("no write committed within {TRIAL_TIMEOUT:?} of the kill after {attempts} attempts; last error: {last_error}")
}
