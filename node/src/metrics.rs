//! Process-wide counters and latency histograms, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::raft::Message;

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds of latency buckets, in seconds.
const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// A cumulative histogram of durations.
pub struct Histogram {
    counts: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: LATENCY_BUCKETS.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        if let Some(bucket) = LATENCY_BUCKETS.iter().position(|&bound| seconds <= bound) {
            self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(duration.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Mean of the observed durations in milliseconds, or 0 when empty.
    pub fn mean_ms(&self) -> f64 {
        let count = self.count();
        if count == 0 {
            return 0.0;
        }
        self.sum_micros.load(Ordering::Relaxed) as f64 / count as f64 / 1000.0
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let separator = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {cumulative}");
        }
        let total = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {total}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {total}");
    }
}

/// Everything the node counts. Gauges such as term and commit index come from the
/// Raft status when rendering.
#[derive(Default)]
pub struct Metrics {
    pub elections_started: Counter,
    pub leader_changes: Counter,
    pub peer_messages_dropped: Counter,
    pub peer_flushes: Counter,
    pub fsync: Histogram,
    pub training: Histogram,
    pub training_failures: Counter,
    pub snapshots_taken: Counter,
    pub snapshots_installed: Counter,
    pub predictions: Histogram,
    /// Peer messages by (direction, type).
    peer_messages: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Client requests by (type, outcome).
    requests: Mutex<BTreeMap<(String, String), Histogram>>,
}

impl Metrics {
    pub fn count_peer_message_sent(&self, message: &Message) {
        self.count_peer_message("sent", message);
    }

    pub fn count_peer_message_received(&self, message: &Message) {
        self.count_peer_message("received", message);
    }

    fn count_peer_message(&self, direction: &'static str, message: &Message) {
        let mut table = self.peer_messages.lock().unwrap_or_else(|e| e.into_inner());
        *table.entry((direction, message.type_name())).or_default() += 1;
    }

    /// Records one client request; `outcome` is `ok` or an error code.
    pub fn observe_request(&self, kind: &str, outcome: &str, duration: Duration) {
        let mut table = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        table.entry((kind.to_string(), outcome.to_string())).or_default().observe(duration);
    }

    /// Request counts by type, summed over outcomes.
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        let table = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts = BTreeMap::new();
        for ((kind, _), histogram) in table.iter() {
            *counts.entry(kind.clone()).or_default() += histogram.count();
        }
        counts
    }

    /// Renders every metric; `gauges` are (name, help, value) read from the Raft status.
    pub fn render(&self, node: &str, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::new();
        let node_label = format!("node=\"{node}\"");

        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{node_label}}} {value}");
        }

        let counters = [
            ("raft_elections_started_total", "Elections this node started as candidate.", &self.elections_started),
            ("raft_leader_changes_total", "Times this node saw the leader change.", &self.leader_changes),
            ("raft_peer_messages_dropped_total", "Peer messages dropped on a full queue.", &self.peer_messages_dropped),
            ("training_failures_total", "Training jobs that failed.", &self.training_failures),
            ("raft_snapshots_taken_total", "Snapshots this node took to compact its log.", &self.snapshots_taken),
            ("raft_snapshots_installed_total", "Snapshots received from a leader and installed.", &self.snapshots_installed),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{node_label}}} {}", counter.get());
        }

        let _ = writeln!(out, "# HELP raft_peer_messages_total Raft messages by direction and type.");
        let _ = writeln!(out, "# TYPE raft_peer_messages_total counter");
        for ((direction, kind), count) in self.peer_messages.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                out,
                "raft_peer_messages_total{{{node_label},direction=\"{direction}\",type=\"{kind}\"}} {count}"
            );
        }

        let histograms = [
            ("raft_fsync_seconds", "Time to write and fsync one batch of log records.", &self.fsync),
            ("training_duration_seconds", "Wall time of ai-core training jobs.", &self.training),
            ("prediction_duration_seconds", "Time to run one prediction through ai-core.", &self.predictions),
        ];
        for (name, help, histogram) in histograms {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            histogram.render(&mut out, name, &node_label);
        }

        let _ = writeln!(out, "# HELP client_request_duration_seconds Client requests by type and outcome.");
        let _ = writeln!(out, "# TYPE client_request_duration_seconds histogram");
        for ((kind, outcome), histogram) in self.requests.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let labels = format!("{node_label},type=\"{kind}\",outcome=\"{outcome}\"");
            histogram.render(&mut out, "client_request_duration_seconds", &labels);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(300));
        histogram.observe(Duration::from_millis(3));
        let mut out = String::new();
        histogram.render(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.0005\"} 1"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.005\"} 2"), "{out}");
        assert!(out.contains("x_count 2"), "{out}");
    }

    #[test]
    fn render_includes_request_labels() {
        let metrics = Metrics::default();
        metrics.observe_request("PREDICT_REQUEST", "ok", Duration::from_millis(2));
        let text = metrics.render("Node_A", &[("raft_term", "Current term.", 3.0)]);
        assert!(text.contains("raft_term{node=\"Node_A\"} 3"), "{text}");
        assert!(text.contains("type=\"PREDICT_REQUEST\",outcome=\"ok\""), "{text}");
    }
}
