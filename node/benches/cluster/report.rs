//! The benchmark's results: the machine, a readable table and a JSON document.

use std::fmt::Write;
use std::time::Duration;

use serde_json::{json, Value};

use crate::failover::Trial;
use crate::writes::{quantile_ms, StageCosts, WritePhase, CSV_BYTES};
use crate::Options;

/// Comparison figures for 1 KiB writes: etcd 3.4, three members on loopback, 2-core machine.
/// (clients, writes per second, p50 ms, p99 ms if known)
const ETCD_TARGETS: &[(usize, f64, f64, Option<f64>)] = &[(1, 693.0, 1.4, None), (8, 1636.0, 4.6, Some(9.9))];
/// Failover targets, in milliseconds: median time to a new leader and to a committed write.
const LEADER_TARGET_MS: f64 = 300.0;
const WRITE_TARGET_MS: f64 = 500.0;

pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
}

impl Machine {
    fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown".to_string(), |(_, name)| name.trim().to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_gib: memory_kib / 1024.0 / 1024.0,
            kernel,
        }
    }
}

/// Returns the workspace's git commit at run time and notes uncommitted changes in the
/// crates' sources, because the binaries under test were built from the working tree.
fn source_version() -> String {
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(commit) => match git(&["status", "--porcelain", "--", "node/src", "client/src", "ai-core/src"]) {
            Some(changes) if !changes.is_empty() => format!("{commit} with uncommitted changes in node, client or ai-core"),
            _ => commit,
        },
        None => "unknown (git failed)".to_string(),
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub struct Results {
    pub machine: Machine,
    pub date: String,
    pub source: String,
    pub load_start: String,
    pub load_end: String,
    pub seconds: f64,
    pub writes: Vec<WritePhase>,
    /// Write phases repeated under other settings, for comparison only: (setting, phases).
    pub comparisons: Vec<(String, Vec<WritePhase>)>,
    pub stages: Option<StageCosts>,
    pub failover: Vec<Trial>,
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn median_and_max(values: &[Duration]) -> (f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort();
    (quantile_ms(&sorted, 0.5), sorted.last().map_or(f64::NAN, |d| ms(*d)))
}

fn optional(value: Option<f64>) -> String {
    value.map_or("-".to_string(), |v| format!("{v:.2}"))
}

/// Formats the p50/p99 of `ai-core check` children, or "-" when the node ran none (it
/// checks CSV files through its `ai-core serve` workers instead).
fn check_column(checks: &[Duration]) -> String {
    if checks.is_empty() {
        return "-".to_string();
    }
    format!("{:.0}/{:.0}", quantile_ms(checks, 0.5), quantile_ms(checks, 0.99))
}

/// Writes one row per phase with the server-side and per-stage means.
fn stage_rows(out: &mut String, phases: &[WritePhase]) {
    let _ = writeln!(
        out,
        "{:>7} {:>10} {:>10} {:>16} {:>22} {:>22} {:>12} {:>9}",
        "clients", "client ms", "server ms", "check p50/p99", "leader fsync ms", "follower fsync ms", "writes/fsync", "snapshots"
    );
    let fsync = |h: &crate::metrics::Histogram| {
        format!("{} ({}/{})", optional(h.mean_ms()), optional(h.quantile_bound_ms(0.5)), optional(h.quantile_bound_ms(0.99)))
    };
    for phase in phases {
        let _ = writeln!(
            out,
            "{:>7} {:>10.2} {:>10} {:>16} {:>22} {:>22} {:>12} {:>9}",
            phase.clients,
            phase.mean_ms(),
            optional(phase.server_upload.mean_ms()),
            check_column(&phase.leader_checks),
            fsync(&phase.leader_fsync),
            fsync(&phase.follower_fsync),
            optional(phase.entries_per_fsync()),
            phase.snapshots_taken
        );
    }
}

impl Results {
    pub fn new(options: &Options) -> Results {
        Results {
            machine: Machine::read(),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            source: source_version(),
            load_start: load_average(),
            load_end: String::new(),
            seconds: options.seconds,
            writes: Vec::new(),
            comparisons: Vec::new(),
            stages: None,
            failover: Vec::new(),
        }
    }

    pub fn finish(&mut self) {
        self.load_end = load_average();
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(out, "\nCluster benchmark: 3 nodes on 127.0.0.1, release build");
        let _ = writeln!(out, "date: {}", self.date);
        let _ = writeln!(out, "source: {}", self.source);
        let _ = writeln!(out, "machine: {}, {} cores, {:.1} GiB RAM, Linux {}", m.cpu, m.cores, m.memory_gib, m.kernel);
        let _ = writeln!(out, "load average: {} at start, {} at end", self.load_start, self.load_end);

        if !self.writes.is_empty() {
            let _ = writeln!(out, "\nReplicated {CSV_BYTES}-byte UPLOAD_DATASET writes, fsync on, up to {} s per row", self.seconds);
            self.write_rows(&mut out, &self.writes, true);
            let _ = writeln!(out, "\nWhere the time goes, per phase: client and server means; ai-core check on the leader");
            let _ = writeln!(out, "(from its log, 1 ms resolution); log fsync mean (p50/p99 histogram bucket bounds)");
            stage_rows(&mut out, &self.writes);
        }
        if let Some(stages) = &self.stages {
            let _ = writeln!(out, "\nCosts measured outside the cluster, same file system ({} samples each)", stages.ai_core_check.len());
            let _ = writeln!(out, "{:<58} {:>8} {:>8}", "step", "p50 ms", "p99 ms");
            let rows = [
                ("ai-core check on a 1 KiB CSV (one child process)", &stages.ai_core_check),
                ("check_csv request to a running ai-core serve", &stages.serve_check),
                ("append 1 KiB to a file + fdatasync (Raft log append)", &stages.log_append_fsync),
                ("write, fsync, rename, fsync dir (applying STORE_FILE)", &stages.atomic_file_write),
            ];
            for (step, samples) in rows {
                let _ = writeln!(out, "{step:<58} {:>8.2} {:>8.2}", quantile_ms(samples, 0.5), quantile_ms(samples, 0.99));
            }
        }
        for (setting, phases) in &self.comparisons {
            let _ = writeln!(out, "\nSame writes, {setting}; for comparison only");
            self.write_rows(&mut out, phases, false);
            stage_rows(&mut out, phases);
        }
        if !self.failover.is_empty() {
            self.failover_rows(&mut out);
        }
        out
    }

    fn write_rows(&self, out: &mut String, phases: &[WritePhase], with_targets: bool) {
        let _ = writeln!(
            out,
            "{:>7} {:>7} {:>6} {:>9} {:>8} {:>8} {:>8}   {}",
            "clients", "writes", "errors", "writes/s", "p50 ms", "p99 ms", "max ms",
            if with_targets { "etcd 3.4 target: writes/s, p50, p99" } else { "" }
        );
        for phase in phases {
            let target = ETCD_TARGETS.iter().find(|t| t.0 == phase.clients).filter(|_| with_targets);
            let target = target.map_or(String::new(), |(_, rate, p50, p99)| {
                format!("{rate:.0}, {p50} ms, {}", p99.map_or("-".to_string(), |p| format!("{p} ms")))
            });
            let _ = writeln!(
                out,
                "{:>7} {:>7} {:>6} {:>9.0} {:>8.2} {:>8.2} {:>8.2}   {target}",
                phase.clients,
                phase.writes,
                phase.errors,
                phase.writes_per_second(),
                phase.quantile_ms(0.5),
                phase.quantile_ms(0.99),
                phase.latencies.last().map_or(f64::NAN, |d| ms(*d)),
            );
            if let Some(error) = &phase.first_error {
                let _ = writeln!(out, "        first error: {error}");
            }
        }
    }

    fn failover_rows(&self, out: &mut String) {
        let _ = writeln!(out, "\nFailover: SIGKILL of the leader, {} trials (GET_STATUS polled every 5 ms on each survivor)", self.failover.len());
        let _ = writeln!(
            out,
            "{:>5} {:>8} {:>10} {:>14} {:>17} {:>9} {:>13}",
            "trial", "killed", "new leader", "new leader ms", "write commit ms", "attempts", "catch-up ms"
        );
        for (n, trial) in self.failover.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:>5} {:>8} {:>10} {:>14.0} {:>17.0} {:>9} {:>13.0}",
                n + 1,
                trial.killed,
                trial.new_leader,
                ms(trial.leader_visible),
                ms(trial.write_committed),
                trial.write_attempts,
                ms(trial.catch_up)
            );
        }
        let leader: Vec<Duration> = self.failover.iter().map(|t| t.leader_visible).collect();
        let write: Vec<Duration> = self.failover.iter().map(|t| t.write_committed).collect();
        let (leader_median, leader_max) = median_and_max(&leader);
        let (write_median, write_max) = median_and_max(&write);
        let _ = writeln!(
            out,
            "new leader visible: median {leader_median:.0} ms, max {leader_max:.0} ms (target: median <= {LEADER_TARGET_MS:.0} ms)"
        );
        let _ = writeln!(
            out,
            "next write committed: median {write_median:.0} ms, max {write_max:.0} ms (target: median <= {WRITE_TARGET_MS:.0} ms)"
        );
    }

    pub fn json(&self) -> Value {
        let phase_json = |phase: &WritePhase| {
            json!({
                "clients": phase.clients,
                "writes": phase.writes,
                "errors": phase.errors,
                "first_error": phase.first_error,
                "seconds": phase.elapsed.as_secs_f64(),
                "writes_per_second": phase.writes_per_second(),
                "latency_ms": {
                    "mean": phase.mean_ms(),
                    "p50": phase.quantile_ms(0.5),
                    "p99": phase.quantile_ms(0.99),
                    "max": phase.latencies.last().map(|d| ms(*d)),
                },
                "server_upload_mean_ms": phase.server_upload.mean_ms(),
                "leader_ai_core_check_ms": {
                    "count": phase.leader_checks.len(),
                    "p50": quantile_ms(&phase.leader_checks, 0.5),
                    "p99": quantile_ms(&phase.leader_checks, 0.99),
                },
                "leader_fsync": {"count": phase.leader_fsync.count, "mean_ms": phase.leader_fsync.mean_ms()},
                "follower_fsync": {"count": phase.follower_fsync.count, "mean_ms": phase.follower_fsync.mean_ms()},
                "writes_per_leader_fsync": phase.entries_per_fsync(),
                "snapshots_taken": phase.snapshots_taken,
            })
        };
        let stage_json = |samples: &[Duration]| json!({"p50_ms": quantile_ms(samples, 0.5), "p99_ms": quantile_ms(samples, 0.99)});
        let trials: Vec<Value> = self
            .failover
            .iter()
            .map(|t| {
                json!({
                    "killed": t.killed,
                    "new_leader": t.new_leader,
                    "new_leader_ms": ms(t.leader_visible),
                    "write_committed_ms": ms(t.write_committed),
                    "write_attempts": t.write_attempts,
                    "catch_up_ms": ms(t.catch_up),
                })
            })
            .collect();
        let leader: Vec<Duration> = self.failover.iter().map(|t| t.leader_visible).collect();
        let write: Vec<Duration> = self.failover.iter().map(|t| t.write_committed).collect();
        json!({
            "date": self.date,
            "source": self.source,
            "machine": {
                "cpu": self.machine.cpu,
                "cores": self.machine.cores,
                "memory_gib": self.machine.memory_gib,
                "kernel": self.machine.kernel,
                "load_average_start": self.load_start,
                "load_average_end": self.load_end,
            },
            "csv_bytes": CSV_BYTES,
            "writes": self.writes.iter().map(phase_json).collect::<Vec<_>>(),
            "comparisons": self
                .comparisons
                .iter()
                .map(|(setting, phases)| json!({"setting": setting, "writes": phases.iter().map(phase_json).collect::<Vec<_>>()}))
                .collect::<Vec<_>>(),
            "stage_costs": self.stages.as_ref().map(|s| json!({
                "ai_core_check": stage_json(&s.ai_core_check),
                "serve_check": stage_json(&s.serve_check),
                "log_append_fsync": stage_json(&s.log_append_fsync),
                "atomic_file_write": stage_json(&s.atomic_file_write),
            })),
            "failover": {
                "trials": trials,
                "new_leader_ms": {"median": median_and_max(&leader).0, "max": median_and_max(&leader).1},
                "write_committed_ms": {"median": median_and_max(&write).0, "max": median_and_max(&write).1},
            },
        })
    }
}
