//! The HTTP monitor: `/` (a live HTML page in English and Spanish), `/api/status`
//! (JSON in the original's shape plus what the page shows), `/metrics` (Prometheus
//! text format) and `/health` (200 with a known leader, 503 without).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::Filter;

use crate::raft::Role;
use crate::service::Service;
use crate::state_machine::{DATASETS_DIR, MODELS_DIR};

const PAGE_TEMPLATE: &str = include_str!("../templates/monitor.html");

/// Builds the monitor's routes.
pub fn routes(
    service: Arc<Service>,
    started: Instant,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone {
    let with_service = warp::any().map(move || (service.clone(), started));

    let page = warp::path::end()
        .and(warp::get())
        .and(warp::query::<std::collections::HashMap<String, String>>())
        .and(warp::header::optional::<String>("accept-language"))
        .and(with_service.clone())
        .map(|query: std::collections::HashMap<String, String>, accept: Option<String>, (service, _): (Arc<Service>, Instant)| {
            let lang = choose_language(query.get("lang").map(String::as_str), accept.as_deref());
            render_page(&service, lang)
        });

    let status = warp::path!("api" / "status")
        .and(warp::get())
        .and(with_service.clone())
        .map(|(service, started): (Arc<Service>, Instant)| warp::reply::json(&status_json(&service, started)));

    let metrics = warp::path!("metrics").and(warp::get()).and(with_service.clone()).map(
        |(service, _): (Arc<Service>, Instant)| {
            warp::reply::with_header(metrics_text(&service), "content-type", "text/plain; version=0.0.4")
        },
    );

    let health = warp::path!("health").and(warp::get()).and(with_service).map(|(service, _): (Arc<Service>, Instant)| {
        let status = service.driver.current().raft;
        let code = if status.leader.is_some() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        let body = json!({"node": status.id, "role": status.role.to_string(), "leader": status.leader, "term": status.term});
        warp::reply::with_status(warp::reply::json(&body), code)
    });

    page.or(status).or(metrics).or(health).recover(not_found)
}

async fn not_found(_: warp::Rejection) -> Result<impl warp::Reply, Infallible> {
    let body = json!({"error": "not found; try /, /api/status, /metrics or /health"});
    Ok(warp::reply::with_status(warp::reply::json(&body), StatusCode::NOT_FOUND))
}

/// Picks `es` or `en` from an explicit `?lang=` or the browser's Accept-Language.
pub fn choose_language(explicit: Option<&str>, accept_language: Option<&str>) -> &'static str {
    match explicit {
        Some("es") => return "es",
        Some("en") => return "en",
        _ => {}
    }
    let first = accept_language.and_then(|header| header.split(',').next()).unwrap_or("");
    if first.trim().to_ascii_lowercase().starts_with("es") {
        "es"
    } else {
        "en"
    }
}

fn render_page(service: &Service, lang: &str) -> warp::reply::Response {
    use warp::Reply;

    let mut context = tera::Context::new();
    context.insert("lang", lang);
    context.insert("node", &service.config.id);
    match tera::Tera::one_off(PAGE_TEMPLATE, &context, true) {
        Ok(html) => warp::reply::html(html).into_response(),
        Err(e) => {
            log::error!("rendering the monitor page failed: {e}");
            warp::reply::with_status(format!("monitor page failed to render: {e}"), StatusCode::INTERNAL_SERVER_ERROR)
                .into_response()
        }
    }
}

/// Builds the `/api/status` document: the original's `{node, raft, replication, metrics}` and more.
pub fn status_json(service: &Service, started: Instant) -> Value {
    let current = service.driver.current();
    let raft = &current.raft;
    let is_leader = raft.role == Role::Leader;

    // A peer is reachable when its last message is younger than two election timeouts.
    let reachable_ms = 2 * service.config.election_ticks.1 as u64 * service.config.tick.as_millis() as u64;
    let cluster: Vec<Value> = service
        .config
        .cluster
        .nodes
        .iter()
        .map(|member| {
            let progress = raft.progress.iter().find(|p| p.id == member.id);
            let is_self = member.id == raft.id;
            let last_heard = current.peers_last_heard.iter().find(|(id, _)| *id == member.id).map(|(_, ms)| *ms);
            let reachable = last_heard.map(|ms| ms <= reachable_ms);
            let role = if is_self {
                raft.role.to_string()
            } else if reachable == Some(false) && (is_leader || raft.leader.as_deref() == Some(member.id.as_str())) {
                "unreachable".to_string()
            } else if raft.leader.as_deref() == Some(member.id.as_str()) {
                "leader".to_string()
            } else if is_leader {
                if reachable == Some(true) { "follower" } else { "unreachable" }.to_string()
            } else {
                "unknown".to_string()
            };
            json!({
                "id": member.id,
                "role": role,
                "self": is_self,
                "matchIndex": progress.map(|p| p.match_index).or(is_self.then_some(raft.last_index)),
                "nextIndex": progress.map(|p| p.next_index),
                "active": if is_self { None } else { reachable },
                "lastHeardMs": last_heard,
                "client": member.client_addr(),
                "monitor": format!("http://{}", member.http_addr()),
            })
        })
        .collect();

    let metrics = &service.metrics;
    json!({
        "node": raft.id,
        "raft": {
            "role": raft.role.to_string(),
            "term": raft.term,
            "leader": raft.leader,
            "votedFor": raft.voted_for,
            "commitIndex": raft.commit,
            "appliedIndex": raft.applied,
            "firstLogIndex": raft.first_index,
            "lastLogIndex": raft.last_index,
            "snapshot": raft.snapshot.as_ref().map(|s| json!({"index": s.index, "term": s.term})),
        },
        "replication": {
            "logEntries": current.log_entries,
            "logBytes": current.log_bytes,
            "commitIndex": raft.commit,
            "filesOnDisk": files_on_disk(service),
            "recentEntries": current.recent_entries,
        },
        "cluster": cluster,
        "metrics": {
            "requests": metrics.request_counts(),
            "trainings": metrics.training.count(),
            "trainingFailures": metrics.training_failures.get(),
            "trainingMeanMs": metrics.training.mean_ms(),
            "predictions": metrics.predictions.count(),
            "predictionMeanMs": metrics.predictions.mean_ms(),
            "electionsStarted": metrics.elections_started.get(),
            "leaderChanges": metrics.leader_changes.get(),
            "fsyncs": metrics.fsync.count(),
            "fsyncMeanMs": metrics.fsync.mean_ms(),
        },
        "uptimeSeconds": started.elapsed().as_secs(),
    })
}

/// Files under `datasets/` and `models/` with their sizes and, when the state machine
/// stored them, their SHA-256.
fn files_on_disk(service: &Service) -> Vec<Value> {
    let state = service.driver.state.read().unwrap_or_else(|e| e.into_inner());
    let data_dir = service.config.data_dir();
    let mut files = Vec::new();

    for dir in [DATASETS_DIR, MODELS_DIR] {
        let Ok(entries) = std::fs::read_dir(data_dir.join(dir)) else { continue };
        let mut names: Vec<(String, u64)> = entries
            .flatten()
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.metadata().ok()?.len())))
            .filter(|(name, _)| !name.starts_with('.'))
            .collect();
        names.sort();

        for (name, size) in names {
            let sha256 = if dir == DATASETS_DIR {
                state.dataset(&name).map(|r| r.sha256.clone())
            } else {
                name.strip_suffix(".model").and_then(|id| state.model(id)).map(|r| r.file.sha256.clone())
            };
            files.push(json!({"dir": dir, "name": name, "size": size, "sha256": sha256}));
        }
    }
    files
}

fn metrics_text(service: &Service) -> String {
    let status = service.driver.current();
    let raft = &status.raft;
    let role_value = match raft.role {
        Role::Follower => 0.0,
        Role::PreCandidate => 1.0,
        Role::Candidate => 2.0,
        Role::Leader => 3.0,
    };
    let gauges = [
        ("raft_term", "Current Raft term.", raft.term as f64),
        ("raft_role", "Role: 0 follower, 1 pre-candidate, 2 candidate, 3 leader.", role_value),
        ("raft_commit_index", "Highest log index known to be committed.", raft.commit as f64),
        ("raft_applied_index", "Highest log index applied to the state machine.", raft.applied as f64),
        ("raft_last_log_index", "Index of the last log entry.", raft.last_index as f64),
        ("raft_log_bytes", "Size of the log file in bytes.", status.log_bytes as f64),
    ];
    service.metrics.render(&raft.id, &gauges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_from_query_wins() {
        assert_eq!(choose_language(Some("es"), Some("en-US")), "es");
        assert_eq!(choose_language(Some("en"), Some("es-ES")), "en");
    }

    #[test]
    fn language_from_accept_header() {
        assert_eq!(choose_language(None, Some("es-ES,es;q=0.9,en;q=0.8")), "es");
        assert_eq!(choose_language(None, Some("fr-FR,es;q=0.5")), "en");
        assert_eq!(choose_language(None, None), "en");
    }
}
