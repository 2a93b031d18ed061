//! Text rendering of results: aligned tables and short summaries.

use serde::Serialize;
use serde_json::Value;

use crate::net::{ClientError, NodeStatus, PredictResult, TrainResult};
use crate::stress::StressReport;
use crate::wire::ModelInfo;

/// Formats rows under headers with columns padded to the widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }

    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut text = line(headers.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

pub fn train_text(result: &TrainResult) -> String {
    let mut text = format!("model {} trained", result.model_id);
    if let Some(ms) = result.duration {
        text.push_str(&format!(" in {}", human_duration(ms)));
    }
    if let Some(index) = result.log_index {
        text.push_str(&format!(" (log index {index})"));
    }
    let metrics: Vec<String> = result
        .metrics
        .iter()
        .filter(|(_, value)| !is_empty_value(value))
        .map(|(key, value)| format!("{key} {}", scalar(value)))
        .collect();
    if !metrics.is_empty() {
        text.push_str(&format!("\n{}", metrics.join(", ")));
    }
    text
}

pub fn predict_text(result: &PredictResult) -> String {
    let values: Vec<String> = result.prediction.iter().map(|v| format!("{v:.6}")).collect();
    let mut text = format!("prediction: [{}]", values.join(", "));
    if let Some(label) = &result.label {
        text.push_str(&format!("\nlabel: {}", scalar(label)));
    }
    text
}

pub fn models_table(models: &[ModelInfo]) -> String {
    if models.is_empty() {
        return "no models yet; train one with: client train FILE --model NAME\n".into();
    }
    let rows: Vec<Vec<String>> = models
        .iter()
        .map(|m| {
            vec![
                m.id.clone(),
                m.dataset.clone(),
                m.date.clone(),
                m.status.clone(),
                m.accuracy.map(|a| format!("{a:.3}")).unwrap_or_else(|| "-".into()),
                m.task.clone().unwrap_or_else(|| "-".into()),
                m.features.map(|f| f.to_string()).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    table(&["ID", "DATASET", "DATE", "STATUS", "ACCURACY", "TASK", "FEATURES"], &rows)
}

/// One line of `client status`, also its JSON form.
#[derive(Debug, Serialize)]
pub struct StatusRow {
    pub address: String,
    pub reachable: bool,
    pub node: Option<String>,
    pub role: Option<String>,
    pub term: Option<u64>,
    pub leader: Option<String>,
    pub commit_index: Option<u64>,
    pub error: Option<String>,
}

impl From<&(String, Result<NodeStatus, ClientError>)> for StatusRow {
    fn from((address, result): &(String, Result<NodeStatus, ClientError>)) -> StatusRow {
        let mut row = StatusRow {
            address: address.clone(),
            reachable: result.is_ok(),
            node: None,
            role: None,
            term: None,
            leader: None,
            commit_index: None,
            error: None,
        };
        match result {
            Ok(status) => {
                row.node = Some(status.node.clone());
                row.role = Some(if status.state.is_empty() { role_of(status) } else { status.state.clone() });
                row.term = status.term;
                row.leader = status.leader.clone();
                row.commit_index = status.commit_index;
            }
            Err(error) => row.error = Some(error.to_string()),
        }
        row
    }
}

fn role_of(status: &NodeStatus) -> String {
    if status.is_leader { "leader" } else { "follower" }.into()
}

pub fn status_table(statuses: &[(String, Result<NodeStatus, ClientError>)]) -> String {
    let dash = || "-".to_string();
    let rows: Vec<Vec<String>> = statuses
        .iter()
        .map(StatusRow::from)
        .map(|row| {
            vec![
                row.node.unwrap_or_else(dash),
                row.address,
                row.role.unwrap_or_else(dash),
                row.term.map(|t| t.to_string()).unwrap_or_else(dash),
                row.leader.unwrap_or_else(dash),
                row.commit_index.map(|c| c.to_string()).unwrap_or_else(dash),
                if row.reachable { "yes".into() } else { "no".into() },
            ]
        })
        .collect();
    table(&["NODE", "ADDRESS", "ROLE", "TERM", "LEADER", "COMMIT", "REACHABLE"], &rows)
}

pub fn stress_text(report: &StressReport) -> String {
    let mut text = format!(
        "total {}  successes {}  failures {}  elapsed {:.2} s  {:.1} requests/s\n",
        report.total, report.successes, report.failures, report.elapsed_seconds, report.requests_per_second
    );
    if report.not_sent > 0 {
        text.push_str(&format!("not sent: {} (the --max-seconds limit passed)\n", report.not_sent));
    }
    text.push_str(&format!("setup training of {}: {:.2} s\n\n", report.model, report.setup_seconds));

    let ms = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = report
        .by_type
        .iter()
        .map(|(kind, s)| {
            let counts = [s.requests, s.successes, s.failures].map(|n| n.to_string());
            let mut row = vec![kind.as_str().to_string()];
            row.extend(counts);
            row.extend([s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms].map(ms));
            row
        })
        .collect();
    text.push_str(&table(&["TYPE", "REQUESTS", "OK", "FAILED", "P50 MS", "P95 MS", "P99 MS", "MAX MS"], &rows));

    for (message, count) in report.errors.iter().take(5) {
        text.push_str(&format!("{count} x {message}\n"));
    }
    text
}

/// Formats milliseconds as "25 ms" below one second and "1.5 s" above.
fn human_duration(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.1} s", ms / 1000.0)
    }
}

/// Returns whether a metric carries nothing worth printing: null, `[]` or `{}`.
fn is_empty_value(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        _ => false,
    }
}

/// Shows a JSON scalar without quotes around strings.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.4}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns() {
        let text = table(&["A", "LONG"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(text, "A    LONG\nxyz  1\n");
    }

    #[test]
    fn train_text_skips_empty_metrics() {
        let result: TrainResult = serde_json::from_value(serde_json::json!({
            "modelId": "m1", "duration": 25.0, "logIndex": 6, "accuracy": 0.5, "rmse": null, "skippedLines": []
        }))
        .unwrap();
        assert_eq!(train_text(&result), "model m1 trained in 25 ms (log index 6)\naccuracy 0.5000");
    }

    #[test]
    fn durations_switch_to_seconds() {
        assert_eq!(human_duration(999.0), "999 ms");
        assert_eq!(human_duration(1500.0), "1.5 s");
    }

    #[test]
    fn unreachable_node_row() {
        let error = ClientError::Unreachable { nodes: "h:1".into(), attempts: 1, last: "refused".into() };
        let text = status_table(&[("h:1".into(), Err(error))]);
        let last = text.lines().nth(1).unwrap();
        assert!(last.starts_with("-"), "row: {last}");
        assert!(last.ends_with("no"), "row: {last}");
    }
}
