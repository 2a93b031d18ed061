//! Start-up and shutdown of one node: recover the log, start the Raft driver, the peer
//! transport and the three listeners, and stop them all on a signal.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use log::info;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::NodeConfig;
use crate::driver::{summarize, Driver, DriverParts, RECENT_ENTRIES};
use crate::metrics::Metrics;
use crate::raft::{Raft, RestoredState};
use crate::service::Service;
use crate::state_machine::StateMachine;
use crate::storage::{load_snapshot, LogStore};
use crate::transport::Transport;

/// Runs the node until Ctrl-C or SIGTERM.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    let me = config.me().clone();
    let data_dir = config.data_dir();
    info!("{}: starting with data directory {}", me.id, data_dir.display());

    let logs_dir = data_dir.join("logs");
    let (store, recovered) = LogStore::open(&logs_dir, config.fsync)
        .with_context(|| format!("recovering the Raft log of {}", me.id))?;
    let mut state = StateMachine::open(&data_dir).context("opening the state machine directories")?;
    let snapshot = load_snapshot(&logs_dir)?;
    if let Some(snapshot) = &snapshot {
        state.restore(&snapshot.data).context("restoring the state machine from the snapshot")?;
    }

    let mut raft_config = crate::raft::Config::new(me.id.clone(), config.cluster.ids());
    raft_config.election_tick_min = config.election_ticks.0;
    raft_config.election_tick_max = config.election_ticks.1;
    raft_config.heartbeat_tick = config.heartbeat_ticks;
    raft_config.seed ^= std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64;

    // Entries that a snapshot already covers stay in the log file when a crash hit
    // between saving the snapshot and rewriting the log.
    let snapshot_index = snapshot.as_ref().map_or(0, |s| s.meta.index);
    let entries: Vec<_> = recovered.entries.into_iter().filter(|e| e.index > snapshot_index).collect();
    let log_entries = entries.last().map_or(snapshot_index, |e| e.index);
    let recent = entries.iter().rev().take(RECENT_ENTRIES).rev().map(summarize).collect();
    let hard_state = recovered.hard_state;
    let restored = RestoredState { hard_state: hard_state.clone(), snapshot: snapshot.as_ref().map(|s| s.meta.clone()), entries };
    let mut raft = Raft::new(raft_config, restored).context("restoring Raft state from the log")?;
    if let Some(snapshot) = snapshot {
        raft.compact(snapshot.meta.index, snapshot.data).context("handing the stored snapshot to the Raft core")?;
    }

    let listeners = Listeners::bind(&config).await?;
    let (shutdown_sender, shutdown) = watch::channel(false);
    let metrics = Arc::new(Metrics::default());
    let peers = config.cluster.nodes.iter().filter(|m| m.id != me.id).map(|m| (m.id.clone(), m.peer_addr())).collect();
    let transport = Transport::start(&me.id, peers, metrics.clone(), shutdown.clone());

    let (driver, driver_thread) = Driver::spawn(DriverParts {
        raft,
        store,
        state,
        transport,
        metrics: metrics.clone(),
        tick: config.tick,
        log_entries,
        logs_dir,
        snapshot_entries: config.snapshot_entries,
        hard_state,
        snapshot_index,
        recent,
    });
    tokio::spawn(crate::transport::serve_peers(listeners.peer, config.cluster.ids(), driver.peer_sender(), shutdown.clone()));

    let service = Arc::new(Service::new(config.clone(), driver.clone(), metrics).context("preparing the work directory")?);
    tokio::spawn(crate::server::serve_clients(listeners.client, service.clone(), shutdown.clone()));
    let routes = crate::monitor::routes(service.clone(), started);
    let mut http_shutdown = shutdown.clone();
    let hint = "is another node or program using it? Stop it (make stop) or choose other ports";
    let (_, http) = warp::serve(routes)
        .try_bind_with_graceful_shutdown(listeners.http_addr, async move {
            let _ = http_shutdown.changed().await;
        })
        .with_context(|| format!("binding monitor port {}; {hint}", listeners.http_addr))?;
    tokio::spawn(http);

    info!(
        "{}: serving clients on {}, peers on {}, monitor on http://{}",
        me.id,
        listeners.client_addr,
        listeners.peer_addr,
        listeners.http_addr
    );
    wait_for_signal().await;

    info!("{}: shutting down", me.id);
    let _ = shutdown_sender.send(true);
    driver.stop();
    let _ = tokio::task::spawn_blocking(move || driver_thread.join()).await;
    info!("{}: stopped", me.id);
    Ok(())
}

struct Listeners {
    client: TcpListener,
    peer: TcpListener,
    client_addr: std::net::SocketAddr,
    peer_addr: std::net::SocketAddr,
    http_addr: std::net::SocketAddr,
}

impl Listeners {
    async fn bind(config: &NodeConfig) -> anyhow::Result<Listeners> {
        let client_addr = config.client_bind()?;
        let peer_addr = config.peer_bind()?;
        let http_addr = config.http_bind()?;
        let hint = "is another node or program using it? Stop it (make stop) or choose other ports";

        let client = TcpListener::bind(client_addr).await.with_context(|| format!("binding client port {client_addr}; {hint}"))?;
        let peer = TcpListener::bind(peer_addr).await.with_context(|| format!("binding peer port {peer_addr}; {hint}"))?;
        Ok(Listeners { client, peer, client_addr, peer_addr, http_addr })
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};

    let mut terminate = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
