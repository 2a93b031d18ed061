//! Replicated 1 KiB UPLOAD_DATASET writes from N concurrent clients, each with its own
//! connection and one request in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;

use crate::harness::{Cluster, Connection, NODE_IDS};
use crate::metrics::{scalar, Histogram};

/// Size of every uploaded CSV, in bytes.
pub const CSV_BYTES: usize = 1024;

/// Builds a valid CSV of exactly [`CSV_BYTES`] bytes: a 12-byte header and 44 rows of 23 bytes,
/// three features in [0, 1) and a 0/1 label. `seed` varies the values, so every upload
/// stores different bytes.
pub fn csv_1k(seed: u64) -> Vec<u8> {
    let mut csv = String::with_capacity(CSV_BYTES);
    csv.push_str("a,b,c,label\n");
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    for row in 0..44 {
        let mut features = [0u64; 3];
        for feature in &mut features {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            *feature = (state >> 33) % 10_000;
        }
        csv.push_str(&format!("0.{:04},0.{:04},0.{:04},{}\n", features[0], features[1], features[2], row % 2));
    }
    assert_eq!(csv.len(), CSV_BYTES, "the generated CSV must be exactly {CSV_BYTES} bytes");
    csv.into_bytes()
}

/// Builds the request line of one upload.
pub fn upload_line(name: &str, request_id: &str, seed: u64) -> String {
    json!({
        "type": "UPLOAD_DATASET",
        "payload": {"name": name, "data_content": STANDARD.encode(csv_1k(seed))},
        "request_id": request_id,
    })
    .to_string()
}

/// Limits of one write phase: it stops at whichever comes first.
#[derive(Clone, Copy, Debug)]
pub struct PhaseLimits {
    pub duration: Duration,
    pub max_writes: usize,
}

/// Client-side and server-side results of one write phase.
#[derive(Debug)]
pub struct WritePhase {
    pub clients: usize,
    pub writes: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Latency of every successful write, sorted.
    pub latencies: Vec<Duration>,
    /// The leader's `raft_fsync_seconds` observations during the phase.
    pub leader_fsync: Histogram,
    /// One follower's `raft_fsync_seconds` observations during the phase.
    pub follower_fsync: Histogram,
    /// The leader's `client_request_duration_seconds` for successful uploads.
    pub server_upload: Histogram,
    /// `ai-core check` child processes on the leader, from spawn to exit, sorted. The
    /// node's log has millisecond timestamps, so each value is within 1 ms.
    pub leader_checks: Vec<Duration>,
    pub snapshots_taken: f64,
}

impl WritePhase {
    pub fn writes_per_second(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64()
    }

    /// Returns the latency at quantile `q` (nearest rank) in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        quantile_ms(&self.latencies, q)
    }

    pub fn mean_ms(&self) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies.iter().map(Duration::as_secs_f64).sum::<f64>() / self.latencies.len() as f64 * 1000.0
    }

    /// Returns the writes per leader log fsync over the phase.
    pub fn entries_per_fsync(&self) -> Option<f64> {
        (self.leader_fsync.count > 0.0).then(|| self.writes as f64 / self.leader_fsync.count)
    }
}

/// Returns the nearest-rank quantile of sorted durations in milliseconds, or NaN when empty.
pub fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

struct Scrape {
    leader: String,
    follower: String,
}

fn scrape(cluster: &Cluster, leader: usize, follower: usize) -> Result<Scrape> {
    Ok(Scrape { leader: cluster.metrics(leader)?, follower: cluster.metrics(follower)? })
}

/// Runs `clients` sequential writers against the leader's client port.
pub fn run_phase(cluster: &Cluster, label: &str, clients: usize, limits: PhaseLimits) -> Result<WritePhase> {
    let leader = cluster.wait_for_leader(Duration::from_secs(20))?;
    let follower = (0..3).find(|&i| i != leader).expect("three nodes");
    let port = cluster.ports[leader].client;
    let before = scrape(cluster, leader, follower)?;
    let log_offset = std::fs::metadata(cluster.log_path(leader)).map_or(0, |m| m.len());

    let issued = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new((Vec::new(), 0usize, None::<String>)));
    let started = Instant::now();
    let deadline = started + limits.duration;

    let workers: Vec<_> = (0..clients)
        .map(|client| {
            let issued = issued.clone();
            let results = results.clone();
            let label = label.to_string();
            std::thread::spawn(move || -> Result<()> {
                let mut connection = Connection::open(port, Duration::from_secs(2), Duration::from_secs(60))?;
                let mut latencies = Vec::new();
                let mut errors = 0;
                let mut first_error = None;
                while Instant::now() < deadline {
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if n >= limits.max_writes {
                        break;
                    }
                    let name = format!("b-{label}-{n}.csv");
                    let line = upload_line(&name, &format!("{label}-{client}-{n}"), n as u64);
                    let sent = Instant::now();
                    let response = connection.request(&line)?;
                    let latency = sent.elapsed();
                    if response["success"] == json!(true) {
                        latencies.push(latency);
                    } else {
                        errors += 1;
                        first_error.get_or_insert_with(|| response.to_string());
                    }
                }
                let mut shared = results.lock().unwrap_or_else(|e| e.into_inner());
                shared.0.extend(latencies);
                shared.1 += errors;
                if shared.2.is_none() {
                    shared.2 = first_error;
                }
                Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.join().map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
    }
    let elapsed = started.elapsed();
    let after = scrape(cluster, leader, follower)?;
    let log = std::fs::read(cluster.log_path(leader))?;
    let leader_checks = check_durations(&String::from_utf8_lossy(&log[log_offset as usize..]));

    let (mut latencies, errors, first_error) = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    latencies.sort();
    let fsync = |text: &str, node: usize| Histogram::parse(text, "raft_fsync_seconds", &[&format!("node=\"{}\"", NODE_IDS[node])]);
    let upload = |text: &str| Histogram::parse(text, "client_request_duration_seconds", &["type=\"UPLOAD_DATASET\"", "outcome=\"ok\""]);
    let snapshots = |text: &str| scalar(text, "raft_snapshots_taken_total", &[]).unwrap_or(0.0);
    Ok(WritePhase {
        clients,
        writes: latencies.len(),
        errors,
        first_error,
        elapsed,
        latencies,
        leader_fsync: fsync(&after.leader, leader).since(&fsync(&before.leader, leader)),
        follower_fsync: fsync(&after.follower, follower).since(&fsync(&before.follower, follower)),
        server_upload: upload(&after.leader).since(&upload(&before.leader)),
        leader_checks,
        snapshots_taken: snapshots(&after.leader) - snapshots(&before.leader),
    })
}

/// Durations of the `ai-core check` children in a node log, paired by pid from the
/// runner's "started" and "exited" lines. Requires the node's log level to include info.
fn check_durations(log: &str) -> Vec<Duration> {
    let timestamp = |line: &str| {
        let text = line.strip_prefix('[')?.split(' ').next()?;
        chrono::DateTime::parse_from_rfc3339(text).ok()
    };
    let pid = |line: &str| line.split("(pid ").nth(1)?.split(')').next()?.parse::<u32>().ok();

    let mut started = std::collections::HashMap::new();
    let mut durations = Vec::new();
    for line in log.lines().filter(|l| l.contains("ai-core check")) {
        let (Some(time), Some(pid)) = (timestamp(line), pid(line)) else { continue };
        if line.contains(" started (pid ") {
            started.insert(pid, time);
        } else if line.contains(" exited with ") {
            if let Some(start) = started.remove(&pid) {
                durations.push((time - start).to_std().unwrap_or_default());
            }
        }
    }
    durations.sort();
    durations
}

/// Sends `count` uploads on one connection, so that the first measured write does not pay
/// for directory creation and cold caches.
pub fn warm_up(cluster: &Cluster, count: usize) -> Result<()> {
    let leader = cluster.wait_for_leader(Duration::from_secs(20))?;
    let mut connection = Connection::open(cluster.ports[leader].client, Duration::from_secs(2), Duration::from_secs(60))?;
    for n in 0..count {
        let response = connection.request(&upload_line(&format!("warm-{n}.csv"), &format!("warm-{n}"), n as u64))?;
        if response["success"] != json!(true) {
            anyhow::bail!("warm-up upload {n} failed: {response}");
        }
    }
    Ok(())
}

/// Costs of the steps that one upload goes through, measured outside the cluster.
#[derive(Debug)]
pub struct StageCosts {
    /// `ai-core check data.csv --json` on a 1 KiB CSV, one child process each.
    pub ai_core_check: Vec<Duration>,
    /// A `check_csv` request to one long-lived `ai-core serve` process, round trip.
    pub serve_check: Vec<Duration>,
    /// Appending 1 KiB to an open file and calling `fdatasync`, as the Raft log does.
    pub log_append_fsync: Vec<Duration>,
    /// Create, write 1 KiB, `fsync`, rename and `fsync` the directory, as applying a
    /// STORE_FILE entry does.
    pub atomic_file_write: Vec<Duration>,
}

/// Measures [`StageCosts`] `samples` times each in `dir`, on the cluster's file system.
pub fn measure_stage_costs(dir: &std::path::Path, samples: usize) -> Result<StageCosts> {
    use std::io::Write;

    let ai_core = crate::harness::ai_core_path()?;
    let csv_path = dir.join("stage.csv");
    std::fs::write(&csv_path, csv_1k(7))?;
    let mut ai_core_check = Vec::new();
    for _ in 0..samples {
        let started = Instant::now();
        let output = std::process::Command::new(&ai_core).arg("check").arg(&csv_path).arg("--json").output()?;
        ai_core_check.push(started.elapsed());
        if !output.status.success() {
            anyhow::bail!("ai-core check failed on the benchmark CSV: {}", String::from_utf8_lossy(&output.stdout));
        }
    }

    let serve_check = measure_serve_checks(&ai_core, dir, &csv_path, samples)?;

    let block = csv_1k(8);
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("stage.log"))?;
    let mut log_append_fsync = Vec::new();
    for _ in 0..samples {
        let started = Instant::now();
        log.write_all(&block)?;
        log.sync_data()?;
        log_append_fsync.push(started.elapsed());
    }

    let files = dir.join("stage-files");
    std::fs::create_dir_all(&files)?;
    let mut atomic_file_write = Vec::new();
    for n in 0..samples {
        let started = Instant::now();
        let temp = files.join(format!(".f{n}.tmp"));
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&block)?;
        file.sync_all()?;
        std::fs::rename(&temp, files.join(format!("f{n}.csv")))?;
        std::fs::File::open(&files).and_then(|d| d.sync_all()).with_context(|| format!("fsync of directory {}", files.display()))?;
        atomic_file_write.push(started.elapsed());
    }

    let mut costs = StageCosts { ai_core_check, serve_check, log_append_fsync, atomic_file_write };
    for samples in [&mut costs.ai_core_check, &mut costs.serve_check, &mut costs.log_append_fsync, &mut costs.atomic_file_write] {
        samples.sort();
    }
    Ok(costs)
}

/// Times `samples` `check_csv` requests to one `ai-core serve` process, as the node's
/// workers send them, after one request that is not timed.
fn measure_serve_checks(ai_core: &std::path::Path, dir: &std::path::Path, csv: &std::path::Path, samples: usize) -> Result<Vec<Duration>> {
    use std::io::{BufRead, Write};
    use std::process::Stdio;

    let models = dir.join("stage-models");
    std::fs::create_dir_all(&models)?;
    let mut child = std::process::Command::new(ai_core)
        .arg("serve")
        .arg("--models-dir")
        .arg(&models)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting ai-core serve")?;
    let mut stdin = child.stdin.take().context("ai-core serve has no stdin")?;
    let mut stdout = std::io::BufReader::new(child.stdout.take().context("ai-core serve has no stdout")?);

    let mut durations = Vec::new();
    let mut result = Ok(());
    for id in 0..=samples {
        let started = Instant::now();
        let request = json!({"id": id, "check_csv": csv.display().to_string()});
        let mut response = String::new();
        if let Err(e) = writeln!(stdin, "{request}").and_then(|_| stdout.read_line(&mut response)) {
            result = Err(anyhow::anyhow!("check_csv request to ai-core serve failed: {e}"));
            break;
        }
        if !response.contains("\"success\":true") {
            result = Err(anyhow::anyhow!("ai-core serve rejected the benchmark CSV: {}", response.trim()));
            break;
        }
        if id > 0 {
            durations.push(started.elapsed());
        }
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    result.map(|()| durations)
}
