//! Cluster benchmark: replicated 1 KiB writes and leader failover on a real three-node
//! cluster of release binaries, on free loopback ports, with fsync on.
//!
//! Run with `cargo bench -p node --bench cluster [-- OPTIONS]` after
//! `cargo build --release --workspace` (the nodes run `ai-core` from the same directory).
//! `--help` lists the options.

mod failover;
mod harness;
mod metrics;
mod report;
mod writes;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use harness::Cluster;
use writes::PhaseLimits;

const USAGE: &str = "\
usage: cluster [OPTIONS]

  --seconds N         duration of each write phase, in seconds (default 10, env BENCH_SECONDS)
  --max-writes N      maximum writes of each write phase (default 100000)
  --clients LIST      concurrent clients of the write phases, comma-separated (default 1,8)
  --trials N          failover trials (default 10, env BENCH_TRIALS)
  --skip-writes       skip the write phases
  --skip-failover     skip the failover trials
  --compare-no-fsync  repeat the write phases on a cluster started with --no-fsync, which
                      skips the Raft log's fsync but not the fsyncs of applied files
  --compare-tmpfs     repeat the write phases on a cluster whose data is in /dev/shm, where
                      every fsync returns at once
  --json              print the results as one JSON object after the table
  --help              print this text

Environment: BENCH_JSON=PATH writes the JSON results to PATH. BENCH_NODE_LOG sets the
nodes' RUST_LOG (default info, as scripts/cluster.sh uses). BENCH_KEEP_DATA=1 keeps each
cluster's logs and data directories instead of deleting them.";

pub struct Options {
    pub seconds: f64,
    pub max_writes: usize,
    pub clients: Vec<usize>,
    pub trials: usize,
    pub skip_writes: bool,
    pub skip_failover: bool,
    pub compare_no_fsync: bool,
    pub compare_tmpfs: bool,
    pub json: bool,
    pub json_path: Option<String>,
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> Result<T> {
    match std::env::var(name) {
        Ok(text) => text.parse().map_err(|_| anyhow::anyhow!("{name}={text:?} is not a valid number")),
        Err(_) => Ok(default),
    }
}

fn parse_options() -> Result<Options> {
    let mut options = Options {
        seconds: env_number("BENCH_SECONDS", 10.0)?,
        max_writes: 100_000,
        clients: vec![1, 8],
        trials: env_number("BENCH_TRIALS", 10)?,
        skip_writes: false,
        skip_failover: false,
        compare_no_fsync: false,
        compare_tmpfs: false,
        json: false,
        json_path: std::env::var("BENCH_JSON").ok().filter(|p| !p.is_empty()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().with_context(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "--seconds" => options.seconds = value("--seconds")?.parse().context("--seconds must be a number")?,
            "--max-writes" => options.max_writes = value("--max-writes")?.parse().context("--max-writes must be a number")?,
            "--trials" => options.trials = value("--trials")?.parse().context("--trials must be a number")?,
            "--clients" => {
                options.clients = value("--clients")?
                    .split(',')
                    .map(|n| n.trim().parse::<usize>())
                    .collect::<Result<_, _>>()
                    .context("--clients must list numbers, e.g. 1,8")?;
            }
            "--skip-writes" => options.skip_writes = true,
            "--skip-failover" => options.skip_failover = true,
            "--compare-no-fsync" => options.compare_no_fsync = true,
            "--compare-tmpfs" => options.compare_tmpfs = true,
            "--json" => options.json = true,
            // `cargo bench` passes --bench to every bench target.
            "--bench" => {}
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    if !(options.seconds > 0.0 && options.seconds <= 600.0) {
        bail!("--seconds must be in (0, 600], got {}", options.seconds);
    }
    if options.clients.iter().any(|&c| c == 0 || c > 256) {
        bail!("--clients must be between 1 and 256, got {:?}", options.clients);
    }
    if options.trials > 100 {
        bail!("--trials must be at most 100, got {}", options.trials);
    }
    Ok(options)
}

/// Runs the write phases of `options` on a fresh cluster started with `node_args`, with
/// its data under `parent` when given.
fn write_phases(
    options: &Options,
    node_args: &[&str],
    parent: Option<&Path>,
    label: &str,
) -> Result<(Cluster, Vec<writes::WritePhase>)> {
    let cluster = Cluster::start(node_args, parent)?;
    writes::warm_up(&cluster, 20)?;
    let limits = PhaseLimits { duration: Duration::from_secs_f64(options.seconds), max_writes: options.max_writes };
    let mut phases = Vec::new();
    for &clients in &options.clients {
        eprintln!("{label}: {clients} client(s) for up to {} s", options.seconds);
        phases.push(writes::run_phase(&cluster, &format!("{label}-c{clients}"), clients, limits)?);
    }
    Ok((cluster, phases))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let options = parse_options()?;
    let mut results = report::Results::new(&options);

    let mut cluster = if options.skip_writes {
        Cluster::start(&[], None)?
    } else {
        let (cluster, phases) = write_phases(&options, &[], None, "fsync")?;
        results.writes = phases;
        cluster
    };

    eprintln!("measuring ai-core check, log fsync and file write costs");
    results.stages = Some(writes::measure_stage_costs(cluster.path(), 50)?);

    if !options.skip_failover && options.trials > 0 {
        results.failover = failover::run_trials(&mut cluster, options.trials)?;
    }
    drop(cluster);

    if options.compare_no_fsync && !options.skip_writes {
        let (_cluster, phases) = write_phases(&options, &["--no-fsync"], None, "nofsync")?;
        results.comparisons.push(("cluster started with --no-fsync (Raft log not fsynced)".into(), phases));
    }
    if options.compare_tmpfs && !options.skip_writes {
        let (_cluster, phases) = write_phases(&options, &[], Some(Path::new("/dev/shm")), "tmpfs")?;
        results.comparisons.push(("data directories in /dev/shm (tmpfs, no fsync reaches a disk)".into(), phases));
    }

    results.finish();
    print!("{}", results.table());
    let json = results.json();
    if options.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    if let Some(path) = &options.json_path {
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n").with_context(|| format!("writing {path}"))?;
        eprintln!("wrote {path}");
    }
    Ok(())
}
