//! Deterministic simulation of Raft clusters with an unreliable network and
//! crashing nodes.
//!
//! One u64 seed drives everything: cluster size, fault rates, message
//! loss, duplication and delays (which reorder messages), partitions,
//! crashes, clock speeds, client proposals and compaction. Time is virtual
//! (a tick is `UNITS_PER_TICK` time units; a message takes 1 to 8 units,
//! sometimes much longer). After every event the harness checks:
//!
//! - election safety: at most one leader per term over the whole run;
//! - log matching: two stored entries with the same index and term have
//!   identical prefixes (each stored entry carries a hash of its prefix);
//! - leader completeness: the log of a leader of term T contains every
//!   entry committed in a term before T;
//! - state-machine safety: no index is applied with different data on two
//!   nodes, and every node's state after index i is the same;
//! - the commit index never decreases, in memory or on disk, and a node
//!   never changes its vote within a term;
//! - the Ready contract: a granted vote and an acknowledged entry are on
//!   the node's storage before the reply leaves.
//!
//! After the fault phase all links heal and all nodes restart. A single
//! leader must then emerge, and every node must reach the same log, commit
//! index and state within `CONVERGE_TICKS`. Every proposal that any node
//! applied must still be present.
//!
//! Environment: `SIM_SEEDS` (number of seeds, default 200), `SIM_SEED_START`
//! (first seed, default 0), `SIM_SEED` (run only that seed, with a trace),
//! `SIM_THREADS` (default: available cores). A failing seed prints the last
//! events and the command that replays it.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use node::raft::{Config, Entry, HardState, Message, NodeId, Raft, Ready, RestoredState, Snapshot};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const UNITS_PER_TICK: u64 = 10;
const CHAOS_TICKS: u64 = 1000;
/// Ticks allowed for election and catch-up after healing. Two election
/// timeouts (at most 30 ticks each with the default config), plus a
/// check-quorum period and snapshot transfer, fit well within this.
const CONVERGE_TICKS: u64 = 300;
const TRACE_EVENTS: usize = 300;

// ---------------------------------------------------------------------------
// Hashes that stand for log prefixes and state-machine states.

fn mix(hash: u64, value: u64) -> u64 {
    let mut z = hash.rotate_left(7) ^ value.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Returns the proposal id carried by an entry, or 0 for the leader's no-op.
fn proposal_id(entry: &Entry) -> u64 {
    if entry.data.is_empty() {
        return 0;
    }
    let bytes: [u8; 8] = entry.data[..].try_into().expect("proposals are 8-byte ids");
    u64::from_le_bytes(bytes)
}

fn prefix_hash(previous: u64, entry: &Entry) -> u64 {
    mix(
        mix(mix(previous, entry.index), entry.term),
        proposal_id(entry),
    )
}

// ---------------------------------------------------------------------------
// The replicated application: an ordered list of proposal ids.

#[derive(Clone, Debug, Default)]
struct StateMachine {
    applied: u64,
    hash: u64,
    ids: Vec<u64>,
}

impl StateMachine {
    fn apply(&mut self, entry: &Entry) {
        assert_eq!(
            entry.index,
            self.applied + 1,
            "entries are applied in order without gaps"
        );
        let id = proposal_id(entry);
        self.applied = entry.index;
        self.hash = mix(mix(self.hash, entry.index), id);
        if id != 0 {
            self.ids.push(id);
        }
    }

    fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(16 + 8 * self.ids.len());
        out.extend_from_slice(&self.applied.to_le_bytes());
        out.extend_from_slice(&self.hash.to_le_bytes());
        for id in &self.ids {
            out.extend_from_slice(&id.to_le_bytes());
        }
        Bytes::from(out)
    }

    fn decode(data: &[u8]) -> StateMachine {
        let word = |i: usize| u64::from_le_bytes(data[i * 8..i * 8 + 8].try_into().unwrap());
        assert!(
            data.len() >= 16,
            "snapshot of {} bytes is too short",
            data.len()
        );
        assert_eq!(
            data.len() % 8,
            0,
            "snapshot of {} bytes is not whole words",
            data.len()
        );
        let ids = (2..data.len() / 8).map(word).collect();
        StateMachine {
            applied: word(0),
            hash: word(1),
            ids,
        }
    }
}

// ---------------------------------------------------------------------------
// A node's stable storage, which survives crashes.

#[derive(Clone, Debug, Default)]
struct Storage {
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    /// Prefix hash of the snapshot's last entry.
    snapshot_hash: u64,
    entries: Vec<Entry>,
    /// Prefix hash of each entry in `entries`.
    hashes: Vec<u64>,
}

impl Storage {
    fn snapshot_index(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.meta.index)
    }

    fn last_index(&self) -> u64 {
        self.snapshot_index() + self.entries.len() as u64
    }

    /// Returns the prefix hash at `index`, if the entry is stored or is the
    /// snapshot's last one.
    fn hash_at(&self, index: u64) -> Option<u64> {
        let snapshot_index = self.snapshot_index();
        if index == snapshot_index {
            return Some(self.snapshot_hash);
        }
        if index < snapshot_index || index > self.last_index() {
            return None;
        }
        Some(self.hashes[(index - snapshot_index - 1) as usize])
    }

    fn restored_state(&self) -> RestoredState {
        RestoredState {
            hard_state: self.hard_state.clone(),
            snapshot: self.snapshot.as_ref().map(|s| s.meta.clone()),
            entries: self.entries.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CrashPlan {
    None,
    /// Crash after taking the next Ready, before any of it is stored.
    BeforePersist,
    /// Crash after storing the next Ready, before its messages leave.
    BeforeSend,
}

struct SimNode {
    id: NodeId,
    raft: Option<Raft>,
    state: StateMachine,
    storage: Storage,
    incarnation: u64,
    restart_at: u64,
    crash_plan: CrashPlan,
    /// Commit index seen in this incarnation.
    commit_seen: u64,
    /// Term this node just became leader of. Its log is checked against the
    /// committed log once the Ready of that step is stored.
    completeness_check: Option<u64>,
}

// ---------------------------------------------------------------------------
// The network.

struct InFlight {
    time: u64,
    order: u64,
    from: usize,
    to: usize,
    msg: Message,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.order) == (other.time, other.order)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    /// Reversed, so that `BinaryHeap` pops the earliest message first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.order).cmp(&(self.time, self.order))
    }
}

/// Fault rates of one run, drawn from its seed.
#[derive(Clone, Debug)]
struct Faults {
    drop: f64,
    duplicate: f64,
    long_delay: f64,
    crash_per_tick: f64,
    propose_per_tick: f64,
    compact_every: u64,
    /// Small batches let a leader's AppendEntries end before its no-op,
    /// which the commit rule for earlier terms has to handle.
    max_append_entries: usize,
    /// Proposals carry 8 bytes, so small limits cut batches by size.
    max_append_bytes: usize,
    max_in_flight: usize,
    /// Per node, the chance that a tick is skipped: clocks run at different
    /// speeds, so timeouts expire in varying order.
    skip_tick: Vec<f64>,
}

#[derive(Clone, Debug, Default)]
struct Stats {
    seeds: u64,
    ticks: u64,
    messages: u64,
    leaders_elected: u64,
    crashes: u64,
    lost_readies: u64,
    unsent_readies: u64,
    snapshots_installed: u64,
    proposals_applied: u64,
    max_converge_ticks: u64,
    partitions: u64,
}

impl Stats {
    fn add(&mut self, other: &Stats) {
        self.seeds += other.seeds;
        self.ticks += other.ticks;
        self.messages += other.messages;
        self.leaders_elected += other.leaders_elected;
        self.crashes += other.crashes;
        self.lost_readies += other.lost_readies;
        self.unsent_readies += other.unsent_readies;
        self.snapshots_installed += other.snapshots_installed;
        self.proposals_applied += other.proposals_applied;
        self.max_converge_ticks = self.max_converge_ticks.max(other.max_converge_ticks);
        self.partitions += other.partitions;
    }
}

type Trace = Arc<Mutex<VecDeque<String>>>;

struct Sim {
    seed: u64,
    rng: StdRng,
    faults: Faults,
    nodes: Vec<SimNode>,
    pre_vote: bool,
    check_quorum: bool,
    queue: BinaryHeap<InFlight>,
    order: u64,
    now: u64,
    tick: u64,
    /// `blocked[from][to]` is true when the link drops every message.
    blocked: Vec<Vec<bool>>,
    next_topology_change: u64,
    chaos: bool,
    leader_of_term: BTreeMap<u64, usize>,
    /// Prefix hash of every stored (index, term), across all nodes.
    entry_hashes: HashMap<(u64, u64), u64>,
    /// Prefix hash of each committed index, and the term of the node that
    /// first saw it committed (the entry was committed in that term or
    /// earlier). Element 0 stands for the empty log.
    committed: Vec<(u64, u64)>,
    /// Proposal id and state hash after applying each index.
    applied: Vec<(u64, u64)>,
    next_proposal: u64,
    stats: Stats,
    trace: Option<Trace>,
}

impl Sim {
    fn new(seed: u64, trace: Option<Trace>) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let size = if rng.gen_bool(0.5) { 3 } else { 5 };
        let faults = Faults {
            drop: rng.gen_range(0.0..0.15),
            duplicate: rng.gen_range(0.0..0.05),
            long_delay: rng.gen_range(0.0..0.10),
            crash_per_tick: rng.gen_range(0.0..0.01),
            propose_per_tick: rng.gen_range(0.05..0.5),
            compact_every: rng.gen_range(5..40),
            max_append_entries: [1, 2, 16][rng.gen_range(0..3)],
            max_append_bytes: [8, 24, 1 << 20][rng.gen_range(0..3)],
            max_in_flight: [1, 8][rng.gen_range(0..2)],
            skip_tick: (0..size).map(|_| rng.gen_range(0.0..0.3)).collect(),
        };
        // Safety must hold without pre-vote and check-quorum too.
        let pre_vote = rng.gen_bool(0.85);
        let check_quorum = rng.gen_bool(0.85);
        let nodes = (0..size)
            .map(|i| SimNode {
                id: format!("n{i}"),
                raft: None,
                state: StateMachine::default(),
                storage: Storage::default(),
                incarnation: 0,
                restart_at: 0,
                crash_plan: CrashPlan::None,
                commit_seen: 0,
                completeness_check: None,
            })
            .collect();
        let mut sim = Sim {
            seed,
            rng,
            faults,
            nodes,
            pre_vote,
            check_quorum,
            queue: BinaryHeap::new(),
            order: 0,
            now: 0,
            tick: 0,
            blocked: vec![vec![false; size]; size],
            next_topology_change: 0,
            chaos: true,
            leader_of_term: BTreeMap::new(),
            entry_hashes: HashMap::new(),
            committed: vec![(0, 0)],
            applied: vec![(0, 0)],
            next_proposal: 1,
            stats: Stats {
                seeds: 1,
                ..Stats::default()
            },
            trace,
        };
        sim.log(|| {
            format!(
                "{size} nodes, pre_vote {pre_vote}, check_quorum {check_quorum}, {:?}",
                sim.faults
            )
        });
        for i in 0..size {
            sim.start_node(i);
        }
        sim
    }

    fn log(&self, event: impl FnOnce() -> String) {
        if let Some(trace) = &self.trace {
            let mut trace = trace.lock().unwrap();
            if trace.len() == TRACE_EVENTS {
                trace.pop_front();
            }
            trace.push_back(format!("[tick {} t={}] {}", self.tick, self.now, event()));
        }
    }

    fn fail(&self, violation: String) -> ! {
        panic!(
            "seed {}: invariant violated at tick {}: {violation}",
            self.seed, self.tick
        );
    }

    fn run(mut self) -> Stats {
        for _ in 0..CHAOS_TICKS {
            self.run_tick();
        }
        self.heal_everything();
        let mut converged_after = None;
        for ticks in 1..=CONVERGE_TICKS {
            self.run_tick();
            if self.converged() {
                converged_after = Some(ticks);
                break;
            }
        }
        let Some(ticks) = converged_after else {
            self.fail(format!(
                "cluster did not converge within {CONVERGE_TICKS} ticks after healing: {}",
                self.summary()
            ));
        };
        self.check_no_applied_proposal_lost();
        self.stats.max_converge_ticks = ticks;
        self.stats.ticks = self.tick;
        self.stats
    }

    // -- time -------------------------------------------------------------

    fn run_tick(&mut self) {
        let tick_end = (self.tick + 1) * UNITS_PER_TICK;
        while self.queue.peek().is_some_and(|m| m.time < tick_end) {
            let message = self.queue.pop().unwrap();
            self.now = message.time;
            self.deliver(message);
        }
        self.now = tick_end;
        self.tick += 1;

        if self.chaos {
            self.inject_faults();
        }
        self.restart_due_nodes();
        for i in 0..self.nodes.len() {
            if self.chaos && self.rng.gen_bool(self.faults.skip_tick[i]) {
                continue;
            }
            let Some(raft) = self.nodes[i].raft.as_mut() else {
                continue;
            };
            raft.tick();
            self.after_event(i);
        }
        if self.chaos && self.rng.gen_bool(self.faults.propose_per_tick) {
            self.propose();
        }
    }

    fn deliver(&mut self, message: InFlight) {
        let InFlight { from, to, msg, .. } = message;
        if self.blocked[from][to] {
            self.log(|| {
                format!(
                    "{} -> {}: dropped by partition: {}",
                    from,
                    to,
                    describe(&msg)
                )
            });
            return;
        }
        if self.nodes[to].raft.is_none() {
            return;
        }
        self.log(|| format!("{from} -> {to}: {}", describe(&msg)));
        let from_id = self.nodes[from].id.clone();
        self.nodes[to].raft.as_mut().unwrap().step(&from_id, msg);
        self.stats.messages += 1;
        self.after_event(to);
    }

    fn send(&mut self, from: usize, to: usize, msg: Message) {
        if self.chaos && self.rng.gen_bool(self.faults.drop) {
            self.log(|| format!("{from} -> {to}: lost: {}", describe(&msg)));
            return;
        }
        let copies = if self.chaos && self.rng.gen_bool(self.faults.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = if self.chaos && self.rng.gen_bool(self.faults.long_delay) {
                self.rng.gen_range(10..80)
            } else {
                self.rng.gen_range(1..=8)
            };
            self.order += 1;
            let order = self.rng.gen::<u64>() ^ self.order;
            self.queue.push(InFlight {
                time: self.now + delay,
                order,
                from,
                to,
                msg: msg.clone(),
            });
        }
    }

    // -- faults -----------------------------------------------------------

    fn inject_faults(&mut self) {
        if self.tick >= self.next_topology_change {
            self.change_topology();
            self.next_topology_change = self.tick + self.rng.gen_range(20..120);
        }
        for i in 0..self.nodes.len() {
            let Some(raft) = self.nodes[i].raft.as_ref() else {
                continue;
            };
            // Leaders crash more often: their crashes create the divergent
            // logs that the commit and election rules must handle.
            let rate = if raft.is_leader() {
                self.faults.crash_per_tick * 4.0
            } else {
                self.faults.crash_per_tick
            };
            if !self.rng.gen_bool(rate.min(1.0)) {
                continue;
            }
            match self.rng.gen_range(0..3) {
                0 => self.crash(i, "crash"),
                1 => self.nodes[i].crash_plan = CrashPlan::BeforePersist,
                _ => self.nodes[i].crash_plan = CrashPlan::BeforeSend,
            }
        }
    }

    fn change_topology(&mut self) {
        let size = self.nodes.len();
        for row in self.blocked.iter_mut() {
            row.fill(false);
        }
        let leader = self
            .nodes
            .iter()
            .position(|n| n.raft.as_ref().is_some_and(Raft::is_leader));
        let choice = self.rng.gen_range(0..6);
        let description = match choice {
            0 => "all links up".to_string(),
            1 => {
                let victim = leader
                    .filter(|_| self.rng.gen_bool(0.5))
                    .unwrap_or_else(|| self.rng.gen_range(0..size));
                self.split(&[victim]);
                format!("isolate {victim}")
            }
            2 => {
                let mut order: Vec<usize> = (0..size).collect();
                for i in (1..size).rev() {
                    let j = self.rng.gen_range(0..=i);
                    order.swap(i, j);
                }
                let minority = &order[..size / 2];
                self.split(minority);
                format!("split off {minority:?}")
            }
            3 | 4 => {
                // Bridge: only the link between the leader and one follower is
                // cut, both ways. Every other node still reaches both.
                let a = leader.unwrap_or_else(|| self.rng.gen_range(0..size));
                let mut b = self.rng.gen_range(0..size - 1);
                if b >= a {
                    b += 1;
                }
                self.blocked[a][b] = true;
                self.blocked[b][a] = true;
                format!("cut link {a} <-> {b}")
            }
            _ => {
                let a = self.rng.gen_range(0..size);
                let mut b = self.rng.gen_range(0..size - 1);
                if b >= a {
                    b += 1;
                }
                self.blocked[a][b] = true;
                format!("cut one-way link {a} -> {b}")
            }
        };
        if choice != 0 {
            self.stats.partitions += 1;
        }
        self.log(|| format!("topology: {description}"));
    }

    /// Cuts every link between `group` and the other nodes.
    fn split(&mut self, group: &[usize]) {
        for a in 0..self.nodes.len() {
            for b in 0..self.nodes.len() {
                if group.contains(&a) != group.contains(&b) {
                    self.blocked[a][b] = true;
                }
            }
        }
    }

    fn crash(&mut self, i: usize, reason: &str) {
        let node = &mut self.nodes[i];
        node.raft = None;
        node.crash_plan = CrashPlan::None;
        node.completeness_check = None;
        node.restart_at = self.tick + self.rng.gen_range(5..80);
        self.stats.crashes += 1;
        self.log(|| {
            format!(
                "node {i}: {reason}; restarting at tick {}",
                self.nodes[i].restart_at
            )
        });
    }

    fn restart_due_nodes(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].raft.is_none() && self.nodes[i].restart_at <= self.tick {
                self.start_node(i);
            }
        }
    }

    fn heal_everything(&mut self) {
        self.chaos = false;
        for row in self.blocked.iter_mut() {
            row.fill(false);
        }
        for i in 0..self.nodes.len() {
            self.nodes[i].crash_plan = CrashPlan::None;
            if self.nodes[i].raft.is_none() {
                self.start_node(i);
            }
        }
        self.log(|| "healed: all links up, all nodes up, no more faults".to_string());
    }

    /// Starts node `i` from its storage, as after a crash.
    fn start_node(&mut self, i: usize) {
        let voters: Vec<NodeId> = self.nodes.iter().map(|n| n.id.clone()).collect();
        let node = &mut self.nodes[i];
        node.incarnation += 1;

        let mut config = Config::new(node.id.clone(), voters);
        config.pre_vote = self.pre_vote;
        config.check_quorum = self.check_quorum;
        config.snapshot_chunk_bytes = 64;
        config.max_append_entries = self.faults.max_append_entries;
        config.max_append_bytes = self.faults.max_append_bytes;
        config.max_in_flight = self.faults.max_in_flight;
        config.seed = mix(mix(self.seed, i as u64), node.incarnation);

        let mut raft = match Raft::new(config, node.storage.restored_state()) {
            Ok(raft) => raft,
            Err(e) => {
                let message = format!("node {i} failed to restart from its storage: {e}");
                self.fail(message);
            }
        };

        let node = &mut self.nodes[i];
        node.state = match &node.storage.snapshot {
            Some(snapshot) => {
                raft.compact(snapshot.meta.index, snapshot.data.clone())
                    .expect("stored snapshot is applied");
                StateMachine::decode(&snapshot.data)
            }
            None => StateMachine::default(),
        };

        node.commit_seen = 0;
        node.raft = Some(raft);
        self.log(|| {
            format!(
                "node {i}: started (incarnation {})",
                self.nodes[i].incarnation
            )
        });
    }

    fn propose(&mut self) {
        let i = self.rng.gen_range(0..self.nodes.len());
        let id = self.next_proposal;
        let Some(raft) = self.nodes[i].raft.as_mut() else {
            return;
        };
        match raft.propose(Bytes::copy_from_slice(&id.to_le_bytes())) {
            Ok((index, term)) => {
                self.next_proposal += 1;
                self.log(|| format!("node {i}: proposal {id} at index {index}, term {term}"));
                self.after_event(i);
            }
            Err(e) => self.log(|| format!("node {i}: proposal rejected: {e}")),
        }
    }

    // -- the driver loop of one node --------------------------------------

    /// Checks roles after a tick, message or proposal, then handles the Ready.
    fn after_event(&mut self, i: usize) {
        self.check_leader(i);
        self.handle_ready(i);
    }

    fn check_leader(&mut self, i: usize) {
        let raft = self.nodes[i].raft.as_ref().unwrap();
        if !raft.is_leader() {
            return;
        }
        let term = raft.term();
        match self.leader_of_term.get(&term) {
            Some(&leader) if leader != i => {
                self.fail(format!("nodes {leader} and {i} both lead term {term}"))
            }
            Some(_) => {}
            None => {
                self.leader_of_term.insert(term, i);
                self.stats.leaders_elected += 1;
                self.nodes[i].completeness_check = Some(term);
                self.log(|| format!("node {i}: leader of term {term}"));
            }
        }
    }

    fn handle_ready(&mut self, i: usize) {
        let raft = self.nodes[i].raft.as_mut().unwrap();
        if !raft.has_ready() {
            return;
        }
        let ready = raft.ready();

        if self.nodes[i].crash_plan == CrashPlan::BeforePersist {
            self.stats.lost_readies += 1;
            self.crash(
                i,
                "crash before storing a Ready; its writes and messages are lost",
            );
            return;
        }
        let Ready {
            hard_state,
            entries,
            snapshot,
            messages,
            committed_entries,
        } = ready;
        self.store(i, hard_state, entries, snapshot.as_ref());
        self.check_stored_commit(i);

        if self.nodes[i].crash_plan == CrashPlan::BeforeSend {
            self.stats.unsent_readies += 1;
            self.crash(
                i,
                "crash after storing a Ready, before sending its messages",
            );
            return;
        }
        for (to, msg) in messages {
            self.check_reply_is_durable(i, &to, &msg);
            let to = self.index_of(&to);
            self.send(i, to, msg);
        }

        if let Some(snapshot) = snapshot {
            self.restore_state(i, &snapshot);
        }
        for entry in &committed_entries {
            self.apply(i, entry);
        }
        self.maybe_compact(i);
    }

    fn index_of(&self, id: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or_else(|| self.fail(format!("message to unknown node {id}")))
    }

    // -- storage and its checks -------------------------------------------

    fn store(
        &mut self,
        i: usize,
        hard_state: Option<HardState>,
        entries: Vec<Entry>,
        snapshot: Option<&Snapshot>,
    ) {
        if let Some(snapshot) = snapshot {
            let key = (snapshot.meta.index, snapshot.meta.term);
            let Some(&hash) = self.entry_hashes.get(&key) else {
                self.fail(format!(
                    "node {i} got a snapshot through {key:?}, an entry no node ever stored"
                ));
            };
            let storage = &mut self.nodes[i].storage;
            storage.snapshot = Some(snapshot.clone());
            storage.snapshot_hash = hash;
            storage.entries.clear();
            storage.hashes.clear();
            self.stats.snapshots_installed += 1;
            self.log(|| format!("node {i}: stored snapshot through {key:?}"));
        }
        if let Some(first) = entries.first() {
            let storage = &self.nodes[i].storage;
            let snapshot_index = storage.snapshot_index();
            if first.index <= snapshot_index || first.index > storage.last_index() + 1 {
                self.fail(format!(
                    "node {i}: Ready entries start at {} but storage holds {}..={}",
                    first.index,
                    snapshot_index + 1,
                    storage.last_index()
                ));
            }
            let keep = (first.index - snapshot_index - 1) as usize;
            let storage = &mut self.nodes[i].storage;
            storage.entries.truncate(keep);
            storage.hashes.truncate(keep);
            let mut previous = storage
                .hashes
                .last()
                .copied()
                .unwrap_or(storage.snapshot_hash);
            for entry in entries {
                let hash = prefix_hash(previous, &entry);
                let key = (entry.index, entry.term);
                match self.entry_hashes.get(&key) {
                    Some(&known) if known != hash => self.fail(format!(
                        "log matching: node {i} stores entry {key:?} whose log prefix differs from another node's"
                    )),
                    Some(_) => {}
                    None => {
                        self.entry_hashes.insert(key, hash);
                    }
                }
                let storage = &mut self.nodes[i].storage;
                storage.entries.push(entry);
                storage.hashes.push(hash);
                previous = hash;
            }
        }
        if let Some(hard_state) = hard_state {
            let old = &self.nodes[i].storage.hard_state;
            if hard_state.term < old.term {
                self.fail(format!(
                    "node {i}: stored term falls from {} to {}",
                    old.term, hard_state.term
                ));
            }
            if hard_state.term == old.term
                && old.voted_for.is_some()
                && hard_state.voted_for != old.voted_for
            {
                self.fail(format!(
                    "node {i}: vote in term {} changes from {:?} to {:?}",
                    old.term, old.voted_for, hard_state.voted_for
                ));
            }
            if hard_state.commit < old.commit {
                self.fail(format!(
                    "node {i}: stored commit falls from {} to {}",
                    old.commit, hard_state.commit
                ));
            }
            self.nodes[i].storage.hard_state = hard_state;
        }
    }

    /// Compares the node's commit index with the committed log so far, and
    /// a new leader's log with what was committed before it was elected.
    fn check_stored_commit(&mut self, i: usize) {
        let commit = self.nodes[i].raft.as_ref().unwrap().status().commit;
        let node = &self.nodes[i];
        if commit < node.commit_seen {
            self.fail(format!(
                "node {i}: commit index falls from {} to {commit}",
                node.commit_seen
            ));
        }
        if commit > node.storage.last_index() {
            self.fail(format!(
                "node {i}: commit index {commit} beyond stored last index {}",
                node.storage.last_index()
            ));
        }
        self.nodes[i].commit_seen = commit;
        self.check_committed_prefix(i, commit);

        if let Some(term) = self.nodes[i].completeness_check.take() {
            self.check_leader_completeness(i, term);
        }
    }

    /// Raft paper, section 5.4: a leader of `term` contains every entry
    /// committed in an earlier term. Leaders of earlier terms may lack
    /// entries committed later, so only entries first seen committed in a
    /// term below `term` are required.
    fn check_leader_completeness(&self, i: usize, term: u64) {
        let Some(required) = self
            .committed
            .iter()
            .rposition(|&(_, seen_in)| seen_in < term)
        else {
            return;
        };
        let storage = &self.nodes[i].storage;
        let point = (required as u64).max(storage.snapshot_index());
        let ours = storage.hash_at(point);
        let expected = self.committed.get(point as usize).map(|&(hash, _)| hash);
        if expected.is_some() && ours != expected {
            self.fail(format!(
                "leader completeness: node {i} leads term {term} without entry {required}, committed in an earlier term"
            ));
        }
    }

    fn check_committed_prefix(&mut self, i: usize, commit: u64) {
        let storage = &self.nodes[i].storage;
        let known = self.committed.len() as u64 - 1;
        if commit <= known {
            if let Some(ours) = storage.hash_at(commit) {
                if ours != self.committed[commit as usize].0 {
                    self.fail(format!(
                        "node {i}: committed entry {commit} differs from the committed log"
                    ));
                }
            }
            return;
        }
        if storage.snapshot_index() > known {
            self.fail(format!(
                "node {i}: has a snapshot through {} beyond the committed log {known}",
                storage.snapshot_index()
            ));
        }
        if let Some(ours) = storage.hash_at(known) {
            if ours != self.committed[known as usize].0 {
                self.fail(format!("node {i}: commits past {known}, but its entry {known} differs from the committed one"));
            }
        }
        let term = self.nodes[i].raft.as_ref().unwrap().term();
        for index in known + 1..=commit {
            let hash = storage
                .hash_at(index)
                .expect("entries after the snapshot are stored");
            self.committed.push((hash, term));
        }
    }

    /// Checks the Ready contract: a granted vote and acknowledged entries
    /// are on storage before the reply is sent.
    fn check_reply_is_durable(&self, i: usize, to: &str, msg: &Message) {
        let storage = &self.nodes[i].storage;
        match msg {
            Message::RequestVoteResponse {
                term,
                vote_granted: true,
                ..
            } => {
                let stored = &storage.hard_state;
                if stored.term != *term || stored.voted_for.as_deref() != Some(to) {
                    self.fail(format!("node {i}: grants its vote in term {term} to {to} before storing it: {stored:?}"));
                }
            }
            Message::AppendEntriesResponse {
                success: true,
                match_index,
                ..
            } if *match_index > storage.last_index() => {
                self.fail(format!(
                    "node {i}: acknowledges entries through {match_index} but stored only through {}",
                    storage.last_index()
                ));
            }
            _ => {}
        }
    }

    // -- the state machine and its checks ---------------------------------

    fn restore_state(&mut self, i: usize, snapshot: &Snapshot) {
        let state = StateMachine::decode(&snapshot.data);
        let index = snapshot.meta.index;
        if state.applied != index {
            self.fail(format!(
                "node {i}: snapshot through {index} holds state through {}",
                state.applied
            ));
        }
        match self.applied.get(index as usize) {
            Some(&(_, hash)) if hash == state.hash => {}
            other => self.fail(format!(
                "node {i}: snapshot state at {index} differs from applied state {other:?}"
            )),
        }
        self.nodes[i].state = state;
    }

    fn apply(&mut self, i: usize, entry: &Entry) {
        let state = &mut self.nodes[i].state;
        if entry.index != state.applied + 1 {
            let applied = state.applied;
            self.fail(format!(
                "node {i}: applies entry {} right after {applied}",
                entry.index
            ));
        }
        state.apply(entry);
        let record = (proposal_id(entry), state.hash);
        let index = entry.index as usize;
        match self.applied.get(index) {
            Some(&known) if known != record => self.fail(format!(
                "state-machine safety: node {i} applies {record:?} at index {index}, another node applied {known:?}"
            )),
            Some(_) => {}
            None if index == self.applied.len() => {
                self.applied.push(record);
                if record.0 != 0 {
                    self.stats.proposals_applied += 1;
                }
            }
            None => self.fail(format!("node {i}: applies index {index} before any node applied {}", self.applied.len())),
        }
    }

    fn maybe_compact(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let applied = node.state.applied;
        if applied < node.storage.snapshot_index() + self.faults.compact_every {
            return;
        }
        let raft = node.raft.as_mut().unwrap();
        let data = node.state.encode();
        raft.compact(applied, data.clone())
            .expect("compacting through the applied index");
        let meta = raft
            .status()
            .snapshot
            .expect("compaction leaves a snapshot");
        let storage = &mut node.storage;
        let hash = storage
            .hash_at(applied)
            .expect("applied entries are stored");
        let drop = (applied - storage.snapshot_index()) as usize;
        storage.entries.drain(..drop);
        storage.hashes.drain(..drop);
        storage.snapshot = Some(Snapshot { meta, data });
        storage.snapshot_hash = hash;
        self.log(|| format!("node {i}: compacted through {applied}"));
    }

    // -- convergence ------------------------------------------------------

    fn converged(&self) -> bool {
        let leaders: Vec<&Raft> = self
            .nodes
            .iter()
            .filter_map(|n| n.raft.as_ref())
            .filter(|r| r.is_leader())
            .collect();
        let [leader] = leaders[..] else {
            return false;
        };
        let target = leader.status();
        self.nodes.iter().all(|node| {
            let Some(raft) = node.raft.as_ref() else {
                return false;
            };
            let status = raft.status();
            status.term == target.term
                && status.leader.as_deref() == Some(leader.id())
                && status.last_index == target.last_index
                && status.commit == target.last_index
                && status.applied == status.commit
                && node.state.applied == status.applied
                && node.state.hash == self.nodes[self.index_of(leader.id())].state.hash
        })
    }

    fn check_no_applied_proposal_lost(&self) {
        for (index, &(id, _)) in self.applied.iter().enumerate() {
            if id == 0 {
                continue;
            }
            for (i, node) in self.nodes.iter().enumerate() {
                if !node.state.ids.contains(&id) {
                    self.fail(format!(
                        "node {i} lost proposal {id}, applied at index {index}"
                    ));
                }
            }
        }
    }

    fn summary(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            match &node.raft {
                None => out.push_str(&format!("\n  node {i}: down")),
                Some(raft) => {
                    let s = raft.status();
                    out.push_str(&format!(
                        "\n  node {i}: {} term {} leader {:?} commit {} applied {} log {}..={} progress {:?}",
                        s.role, s.term, s.leader, s.commit, s.applied, s.first_index, s.last_index, s.progress
                    ));
                }
            }
        }
        out
    }
}

/// Returns a one-line description of a message for the trace.
fn describe(msg: &Message) -> String {
    match msg {
        Message::AppendEntries { term, prev_log_index, prev_log_term, entries, leader_commit, .. } => {
            let range = match (entries.first(), entries.last()) {
                (Some(first), Some(last)) => format!("entries {}..={}", first.index, last.index),
                _ => "no entries".to_string(),
            };
            format!("APPEND_ENTRIES term {term} prev ({prev_log_index}, {prev_log_term}) {range} commit {leader_commit}")
        }
        Message::InstallSnapshot { term, last_included_index, offset, data, done, .. } => format!(
            "INSTALL_SNAPSHOT term {term} through {last_included_index} bytes {offset}+{} done {done}",
            data.len()
        ),
        other => format!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Running seeds.

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a non-negative integer")),
        Err(_) => default,
    }
}

/// Runs one seed, returning the panic message on failure.
fn run_seed(seed: u64, trace: Option<Trace>) -> Result<Stats, String> {
    catch_unwind(AssertUnwindSafe(|| Sim::new(seed, trace).run())).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic without a message".to_string())
    })
}

/// Replays `seed` with tracing and panics with the trace and the failure.
fn report_failure(seed: u64) -> ! {
    let trace: Trace = Arc::new(Mutex::new(VecDeque::new()));
    let outcome = run_seed(seed, Some(trace.clone()));
    let events = trace
        .lock()
        .unwrap()
        .iter()
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    let failure = match outcome {
        Err(message) => message,
        Ok(_) => "the seed passed when replayed with tracing, so the run is not deterministic"
            .to_string(),
    };
    panic!(
        "simulation failed for seed {seed}\nlast {} events:\n{events}\n\nfailure: {failure}\nreplay: SIM_SEED={seed} cargo test -p node --test sim",
        TRACE_EVENTS
    );
}

fn run_seeds(first: u64, count: u64, threads: u64) -> Stats {
    let next = AtomicU64::new(first);
    let failed = Mutex::new(Vec::new());
    let total = Mutex::new(Stats::default());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut local = Stats::default();
                loop {
                    let seed = next.fetch_add(1, AtomicOrdering::Relaxed);
                    if seed >= first + count || !failed.lock().unwrap().is_empty() {
                        break;
                    }
                    match run_seed(seed, None) {
                        Ok(stats) => local.add(&stats),
                        Err(_) => failed.lock().unwrap().push(seed),
                    }
                }
                total.lock().unwrap().add(&local);
            });
        }
    });
    if let Some(&seed) = failed.lock().unwrap().iter().min() {
        report_failure(seed);
    }
    total.into_inner().unwrap()
}

#[test]
fn sim_random_faults_keep_raft_safe() {
    if let Ok(text) = std::env::var("SIM_SEED") {
        let seed: u64 = text.trim().parse().expect("SIM_SEED must be a u64");
        let trace: Trace = Arc::new(Mutex::new(VecDeque::new()));
        match run_seed(seed, Some(trace.clone())) {
            Ok(stats) => {
                for line in trace.lock().unwrap().iter() {
                    println!("{line}");
                }
                println!("seed {seed} passed: {stats:?}");
                return;
            }
            Err(_) => report_failure(seed),
        }
    }
    let count = env_u64("SIM_SEEDS", 200);
    let first = env_u64("SIM_SEED_START", 0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let threads = env_u64("SIM_THREADS", cores).max(1);
    let started = Instant::now();
    let stats = run_seeds(first, count, threads);
    println!(
        "{} seeds ({first}..{}) on {threads} threads in {:.1} s: {stats:?}",
        stats.seeds,
        first + count,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(stats.seeds, count);
    if count >= 100 {
        // The fault mix is random, but over this many seeds each kind must
        // occur, or the run checked less than it claims.
        assert!(stats.leaders_elected > count, "few elections: {stats:?}");
        assert!(stats.crashes > 0, "no crashes: {stats:?}");
        assert!(
            stats.lost_readies > 0,
            "no crash lost an unsaved Ready: {stats:?}"
        );
        assert!(
            stats.unsent_readies > 0,
            "no crash between storing and sending: {stats:?}"
        );
        assert!(
            stats.snapshots_installed > 0,
            "no snapshot was installed: {stats:?}"
        );
        assert!(stats.partitions > count, "few partitions: {stats:?}");
        assert!(
            stats.proposals_applied > count * 10,
            "few proposals applied: {stats:?}"
        );
    }
}

#[test]
fn sim_replays_a_seed_exactly() {
    let trace_of = |seed| {
        let trace: Trace = Arc::new(Mutex::new(VecDeque::new()));
        let stats = run_seed(seed, Some(trace.clone())).expect("seed passes");
        let events: Vec<String> = trace.lock().unwrap().iter().cloned().collect();
        (format!("{stats:?}"), events)
    };
    let first = trace_of(7);
    let second = trace_of(7);
    assert_eq!(first.0, second.0);
    assert_eq!(first.1, second.1);
    assert!(!first.1.is_empty());
}
