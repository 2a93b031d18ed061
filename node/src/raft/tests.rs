//! Scenario tests of the core on a small in-memory network that delivers
//! every message at once, unless a link is cut. The randomized fault
//! simulation is the `sim` integration test.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::*;

fn ids(n: usize) -> Vec<NodeId> {
    (1..=n).map(|i| format!("n{i}")).collect()
}

fn test_config(id: &str, voters: &[NodeId]) -> Config {
    let mut config = Config::new(id, voters.to_vec());
    config.election_tick_min = 10;
    config.election_tick_max = 20;
    config.heartbeat_tick = 2;
    config
}

fn entry(index: u64, term: u64, data: &str) -> Entry {
    Entry {
        index,
        term,
        data: Bytes::from(data.to_string()),
    }
}

/// Builds a log of entries with the given terms, indexes from 1.
fn entries_with_terms(terms: &[u64]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &t)| entry(i as u64 + 1, t, &format!("e{}", i + 1)))
        .collect()
}

fn restored(term: u64, terms: &[u64]) -> RestoredState {
    RestoredState {
        hard_state: HardState {
            term,
            voted_for: None,
            commit: 0,
        },
        snapshot: None,
        entries: entries_with_terms(terms),
    }
}

/// Nodes connected by instant links. `cut` contains the blocked directed links.
struct Network {
    nodes: BTreeMap<NodeId, Raft>,
    cut: BTreeSet<(NodeId, NodeId)>,
    applied: BTreeMap<NodeId, Vec<Entry>>,
    /// Snapshots each node received from a leader.
    installed: BTreeMap<NodeId, Vec<Snapshot>>,
    /// Every message delivered, for tests that count round trips.
    delivered: Vec<(NodeId, NodeId, Message)>,
    /// Every message dropped at a cut link.
    dropped: Vec<(NodeId, NodeId, Message)>,
}

impl Network {
    fn new(n: usize) -> Network {
        let voters = ids(n);
        let states = voters.iter().map(|_| RestoredState::default()).collect();
        Network::with_states(&voters, states)
    }

    fn with_states(voters: &[NodeId], states: Vec<RestoredState>) -> Network {
        let mut nodes = BTreeMap::new();
        for (i, (id, state)) in voters.iter().zip(states).enumerate() {
            let mut config = test_config(id, voters);
            config.seed = i as u64 + 1;
            nodes.insert(id.clone(), Raft::new(config, state).unwrap());
        }
        Network {
            nodes,
            cut: BTreeSet::new(),
            applied: BTreeMap::new(),
            installed: BTreeMap::new(),
            delivered: Vec::new(),
            dropped: Vec::new(),
        }
    }

    fn node(&mut self, id: &str) -> &mut Raft {
        self.nodes.get_mut(id).unwrap()
    }

    fn isolate(&mut self, id: &str) {
        for other in self.nodes.keys() {
            if other != id {
                self.cut.insert((id.to_string(), other.clone()));
                self.cut.insert((other.clone(), id.to_string()));
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    /// Handles every node's Ready and delivers messages until all are quiet.
    fn settle(&mut self) {
        for _round in 0..10_000 {
            let mut outbox = Vec::new();
            for (id, node) in self.nodes.iter_mut() {
                if !node.has_ready() {
                    continue;
                }
                let ready = node.ready();
                if let Some(snapshot) = ready.snapshot {
                    self.installed.entry(id.clone()).or_default().push(snapshot);
                }
                self.applied
                    .entry(id.clone())
                    .or_default()
                    .extend(ready.committed_entries);
                for (to, msg) in ready.messages {
                    outbox.push((id.clone(), to, msg));
                }
            }
            if outbox.is_empty() {
                return;
            }
            for (from, to, msg) in outbox {
                if self.cut.contains(&(from.clone(), to.clone())) {
                    self.dropped.push((from, to, msg));
                    continue;
                }
                self.delivered.push((from.clone(), to.clone(), msg.clone()));
                self.nodes.get_mut(&to).unwrap().step(&from, msg);
            }
        }
        panic!("network did not settle within 10000 rounds");
    }

    fn tick_all(&mut self, ticks: usize) {
        for _ in 0..ticks {
            for node in self.nodes.values_mut() {
                node.tick();
            }
            self.settle();
        }
    }

    /// Makes `id` campaign and settles the network.
    fn elect(&mut self, id: &str) {
        self.node(id).campaign();
        self.settle();
    }

    fn leaders(&self) -> Vec<(NodeId, u64)> {
        self.nodes
            .values()
            .filter(|n| n.is_leader())
            .map(|n| (n.id().to_string(), n.term()))
            .collect()
    }
}

#[test]
fn election_elects_one_leader_per_term() {
    let mut net = Network::new(5);
    let mut leader_of_term: BTreeMap<u64, NodeId> = BTreeMap::new();
    for round in 0..20 {
        net.tick_all(40);
        for (id, term) in net.leaders() {
            let first = leader_of_term.entry(term).or_insert_with(|| id.clone());
            assert_eq!(*first, id, "two leaders in term {term}");
        }
        // Depose the current leader so that later rounds hold new elections.
        if let Some((leader, _)) = net.leaders().into_iter().max_by_key(|(_, t)| *t) {
            if round % 2 == 0 {
                net.isolate(&leader);
            } else {
                net.heal();
            }
        }
    }
    assert!(
        leader_of_term.len() >= 5,
        "expected several elections, saw {leader_of_term:?}"
    );
}

#[test]
fn vote_is_in_hard_state_of_same_ready() {
    let voters = ids(3);
    let mut node = Raft::new(test_config("n1", &voters), RestoredState::default()).unwrap();
    node.step(
        "n2",
        Message::RequestVote {
            term: 1,
            candidate_id: "n2".into(),
            last_log_index: 0,
            last_log_term: 0,
        },
    );
    let ready = node.ready();
    let hard_state = ready.hard_state.expect("a vote changes the hard state");
    assert_eq!(hard_state.term, 1);
    assert_eq!(hard_state.voted_for.as_deref(), Some("n2"));
    assert_eq!(
        ready.messages,
        vec![(
            "n2".to_string(),
            Message::RequestVoteResponse {
                term: 1,
                vote_granted: true,
                node_id: "n1".into()
            }
        )]
    );
}

#[test]
fn vote_granted_once_per_term_even_after_restart() {
    let voters = ids(3);
    let mut node = Raft::new(test_config("n1", &voters), RestoredState::default()).unwrap();
    node.step(
        "n2",
        Message::RequestVote {
            term: 1,
            candidate_id: "n2".into(),
            last_log_index: 0,
            last_log_term: 0,
        },
    );
    let hard_state = node.ready().hard_state.unwrap();

    node.step(
        "n3",
        Message::RequestVote {
            term: 1,
            candidate_id: "n3".into(),
            last_log_index: 0,
            last_log_term: 0,
        },
    );
    let reply = node.ready().messages;
    assert_eq!(
        reply[0].1,
        Message::RequestVoteResponse {
            term: 1,
            vote_granted: false,
            node_id: "n1".into()
        }
    );

    let state = RestoredState {
        hard_state,
        snapshot: None,
        entries: Vec::new(),
    };
    let mut restarted = Raft::new(test_config("n1", &voters), state).unwrap();
    restarted.step(
        "n3",
        Message::RequestVote {
            term: 1,
            candidate_id: "n3".into(),
            last_log_index: 0,
            last_log_term: 0,
        },
    );
    let reply = restarted.ready().messages;
    assert_eq!(
        reply[0].1,
        Message::RequestVoteResponse {
            term: 1,
            vote_granted: false,
            node_id: "n1".into()
        }
    );

    restarted.step(
        "n2",
        Message::RequestVote {
            term: 1,
            candidate_id: "n2".into(),
            last_log_index: 0,
            last_log_term: 0,
        },
    );
    let reply = restarted.ready().messages;
    assert_eq!(
        reply[0].1,
        Message::RequestVoteResponse {
            term: 1,
            vote_granted: true,
            node_id: "n1".into()
        },
        "a repeated request from the same candidate is granted again"
    );
}

#[test]
fn election_restriction_rejects_stale_logs() {
    // Voter log: terms [1, 2, 2] (last term 2, last index 3).
    let cases = [
        // (candidate last index, candidate last term, granted)
        (5, 1, false), // older last term loses, however long
        (2, 2, false), // same last term, shorter log
        (3, 2, true),  // same log
        (1, 3, true),  // newer last term wins, however short
    ];
    let voters = ids(3);
    for (last_log_index, last_log_term, expected) in cases {
        let mut node = Raft::new(test_config("n1", &voters), restored(2, &[1, 2, 2])).unwrap();
        node.step(
            "n2",
            Message::RequestVote {
                term: 3,
                candidate_id: "n2".into(),
                last_log_index,
                last_log_term,
            },
        );
        let messages = node.ready().messages;
        let Message::RequestVoteResponse { vote_granted, .. } = messages[0].1 else {
            panic!("expected a vote response, got {:?}", messages[0].1);
        };
        assert_eq!(
            vote_granted, expected,
            "candidate log ({last_log_index}, term {last_log_term})"
        );
    }
}

#[test]
fn conflicting_entries_are_truncated() {
    let voters = ids(3);
    let mut node = Raft::new(test_config("n1", &voters), restored(2, &[1, 1, 2, 2])).unwrap();
    node.step(
        "n2",
        Message::AppendEntries {
            term: 3,
            leader_id: "n2".into(),
            prev_log_index: 2,
            prev_log_term: 1,
            entries: vec![entry(3, 3, "new")],
            leader_commit: 0,
        },
    );
    let ready = node.ready();
    assert_eq!(
        ready.entries,
        vec![entry(3, 3, "new")],
        "entries to rewrite from index 3"
    );
    assert_eq!(
        node.status().last_index,
        3,
        "index 4 was removed with the conflict"
    );
    let reply = &ready.messages[0].1;
    assert!(
        matches!(
            reply,
            Message::AppendEntriesResponse {
                success: true,
                match_index: 3,
                ..
            }
        ),
        "{reply:?}"
    );
}

#[test]
fn stale_append_entries_does_not_truncate() {
    let voters = ids(3);
    let mut node = Raft::new(test_config("n1", &voters), restored(2, &[1, 2, 2, 2])).unwrap();
    // A delayed copy of an earlier AppendEntries of the same leader: its
    // entries match what the node already has.
    node.step(
        "n2",
        Message::AppendEntries {
            term: 2,
            leader_id: "n2".into(),
            prev_log_index: 1,
            prev_log_term: 1,
            entries: vec![entry(2, 2, "e2")],
            leader_commit: 1,
        },
    );
    let ready = node.ready();
    assert!(
        ready.entries.is_empty(),
        "nothing to rewrite: {:?}",
        ready.entries
    );
    assert_eq!(node.status().last_index, 4);
    let reply = &ready.messages[0].1;
    assert!(
        matches!(
            reply,
            Message::AppendEntriesResponse {
                success: true,
                match_index: 2,
                ..
            }
        ),
        "only the verified prefix is acknowledged: {reply:?}"
    );
}

#[test]
fn follower_commit_is_capped_by_last_new_entry() {
    let voters = ids(3);
    let mut node = Raft::new(test_config("n1", &voters), restored(1, &[1, 1, 1, 1])).unwrap();
    node.step(
        "n2",
        Message::AppendEntries {
            term: 1,
            leader_id: "n2".into(),
            prev_log_index: 1,
            prev_log_term: 1,
            entries: vec![entry(2, 1, "e2")],
            leader_commit: 4,
        },
    );
    assert_eq!(
        node.status().commit,
        2,
        "entries after the verified ones may differ from the leader's"
    );
}

/// Raft paper, Figure 8 and section 5.4.2: a leader must not commit an entry
/// of an earlier term by counting replicas. It commits that entry once an
/// entry of its own term is on a majority.
#[test]
fn commit_of_earlier_term_waits_for_own_entry() {
    let voters = ids(5);
    let states = vec![
        restored(3, &[1, 2]), // n1 stores (2, term 2), not committed
        restored(3, &[1, 2]),
        restored(3, &[1]),
        restored(3, &[1]),
        restored(3, &[1]),
    ];
    let mut net = Network::with_states(&voters, states);
    // n1 wins term 4 with votes from n2..n5; n3..n5 do not get entry 2 yet.
    net.cut.insert(("n1".into(), "n3".into()));
    net.cut.insert(("n1".into(), "n4".into()));
    net.cut.insert(("n1".into(), "n5".into()));
    net.node("n1").become_candidate();
    for voter in ["n3", "n4", "n5"] {
        net.node(voter).step(
            "n1",
            Message::RequestVote {
                term: 4,
                candidate_id: "n1".into(),
                last_log_index: 2,
                last_log_term: 2,
            },
        );
        let votes = net.node(voter).ready().messages;
        for (_, vote) in votes {
            net.node("n1").step(voter, vote);
        }
    }
    net.settle();
    assert!(net.node("n1").is_leader());
    assert_eq!(
        net.node("n1").status().last_index,
        3,
        "no-op of term 4 at index 3"
    );

    // Entry 2 (term 2) now is on n1, n2 and, after this reply, n3: a majority.
    net.node("n1").step(
        "n3",
        Message::AppendEntriesResponse {
            term: 4,
            success: true,
            node_id: "n3".into(),
            match_index: 2,
            conflict_index: None,
            conflict_term: None,
        },
    );
    assert_eq!(
        net.node("n1").status().commit,
        0,
        "an entry of term 2 is not committed by counting replicas"
    );

    net.heal();
    net.tick_all(3);
    assert_eq!(
        net.node("n1").status().commit,
        3,
        "committing the no-op commits entry 2 too"
    );
}

#[test]
fn restart_keeps_term_vote_log_and_reapplies() {
    let voters = ids(3);
    let state = RestoredState {
        hard_state: HardState {
            term: 7,
            voted_for: Some("n2".into()),
            commit: 3,
        },
        snapshot: Some(SnapshotMeta { index: 1, term: 1 }),
        entries: vec![entry(2, 2, "a"), entry(3, 5, "b"), entry(4, 7, "c")],
    };
    let mut node = Raft::new(test_config("n1", &voters), state).unwrap();
    let status = node.status();
    assert_eq!(status.term, 7);
    assert_eq!(status.voted_for.as_deref(), Some("n2"));
    assert_eq!(status.first_index, 2);
    assert_eq!(status.last_index, 4);
    assert_eq!(status.applied, 1, "the snapshot is applied");

    let ready = node.ready();
    assert!(ready.hard_state.is_none(), "nothing changed yet");
    assert!(
        ready.entries.is_empty(),
        "restored entries are already stored"
    );
    assert_eq!(
        ready.committed_entries,
        vec![entry(2, 2, "a"), entry(3, 5, "b")]
    );
    assert_eq!(node.status().applied, 3);
}

#[test]
fn restore_rejects_inconsistent_state() {
    let voters = ids(3);
    let gap = RestoredState {
        hard_state: HardState::default(),
        snapshot: Some(SnapshotMeta { index: 5, term: 1 }),
        entries: vec![entry(7, 1, "x")],
    };
    let err = Raft::new(test_config("n1", &voters), gap).unwrap_err();
    assert_eq!(
        err,
        RestoreError::EntryGap {
            expected: 6,
            found: 7
        }
    );

    let mut beyond = restored(1, &[1, 1]);
    beyond.hard_state.commit = 3;
    let err = Raft::new(test_config("n1", &voters), beyond).unwrap_err();
    assert_eq!(
        err,
        RestoreError::CommitBeyondLastIndex {
            commit: 3,
            last_index: 2
        }
    );

    let err = Raft::new(test_config("n1", &voters), restored(3, &[2, 1])).unwrap_err();
    assert_eq!(
        err,
        RestoreError::TermDecrease {
            index: 2,
            term: 1,
            previous: 2
        }
    );

    let err = Raft::new(test_config("n9", &voters), RestoredState::default()).unwrap_err();
    assert!(matches!(err, RestoreError::InvalidConfig { .. }), "{err}");
}

#[test]
fn restore_adopts_term_of_entries_written_before_crash() {
    let voters = ids(3);
    let mut node = Raft::new(test_config("n1", &voters), restored(2, &[1, 4])).unwrap();
    assert_eq!(node.term(), 4);
    assert_eq!(node.status().voted_for, None);
    assert_eq!(node.ready().hard_state.map(|h| h.term), Some(4));
}

#[test]
fn pre_vote_keeps_isolated_node_term() {
    let mut net = Network::new(3);
    net.elect("n1");
    let term = net.node("n1").term();
    net.isolate("n3");
    net.tick_all(200);
    assert_eq!(
        net.node("n3").term(),
        term,
        "an isolated node does not raise its term"
    );
    assert_eq!(net.node("n3").role(), Role::PreCandidate);

    net.heal();
    net.tick_all(30);
    assert!(
        net.node("n1").is_leader(),
        "the rejoining node does not depose the leader"
    );
    assert_eq!(net.node("n1").term(), term);
    assert_eq!(net.node("n3").leader().map(String::as_str), Some("n1"));
}

#[test]
fn without_pre_vote_isolated_node_raises_term() {
    // The same scenario with pre-vote off shows what the test above guards.
    let voters = ids(3);
    let mut net = Network::new(3);
    for (i, id) in voters.iter().enumerate() {
        let mut config = test_config(id, &voters);
        config.pre_vote = false;
        config.seed = i as u64 + 1;
        net.nodes.insert(
            id.clone(),
            Raft::new(config, RestoredState::default()).unwrap(),
        );
    }
    net.elect("n1");
    let term = net.node("n1").term();
    net.isolate("n3");
    net.tick_all(200);
    assert!(net.node("n3").term() > term);
}

#[test]
fn live_leader_lease_ignores_vote_requests() {
    let mut net = Network::new(3);
    net.elect("n1");
    let term = net.node("n1").term();
    net.node("n2").step(
        "n3",
        Message::RequestVote {
            term: term + 5,
            candidate_id: "n3".into(),
            last_log_index: 99,
            last_log_term: 99,
        },
    );
    assert_eq!(net.node("n2").term(), term, "the term is unchanged");
    assert!(
        net.node("n2").ready().messages.is_empty(),
        "no reply inside the lease"
    );
}

#[test]
fn check_quorum_steps_down_isolated_leader() {
    let mut net = Network::new(3);
    net.elect("n1");
    assert!(net.node("n1").is_leader());
    net.isolate("n1");
    // One full check-quorum period may have just started.
    for _ in 0..(2 * 10 + 1) {
        net.node("n1").tick();
    }
    assert_eq!(net.node("n1").role(), Role::Follower);
    assert_eq!(net.node("n1").leader(), None);
}

#[test]
fn check_quorum_keeps_connected_leader() {
    let mut net = Network::new(3);
    net.elect("n1");
    net.tick_all(100);
    assert!(net.node("n1").is_leader());
}

#[test]
fn proposal_on_follower_names_leader() {
    let mut net = Network::new(3);
    net.elect("n1");
    let err = net
        .node("n2")
        .propose(Bytes::from_static(b"x"))
        .unwrap_err();
    assert_eq!(
        err,
        ProposeError::NotLeader {
            leader: Some("n1".into())
        }
    );
    let err = net.node("n1").propose(Bytes::new()).unwrap_err();
    assert_eq!(err, ProposeError::EmptyData);
}

#[test]
fn wiped_follower_is_resent_whole_log() {
    let mut net = Network::new(3);
    net.elect("n1");
    for i in 0..5 {
        net.node("n1").propose(Bytes::from(format!("entry {i}"))).unwrap();
        net.settle();
    }
    let last = net.node("n1").status().last_index;
    assert_eq!(net.node("n3").status().last_index, last);

    // n3 loses its whole data directory and restarts empty.
    let voters = ids(3);
    let mut config = test_config("n3", &voters);
    config.seed = 99;
    net.nodes.insert("n3".to_string(), Raft::new(config, RestoredState::default()).unwrap());
    net.applied.remove("n3");

    net.node("n1").propose(Bytes::from_static(b"after wipe")).unwrap();
    net.settle();
    net.tick_all(20);

    let status = net.node("n3").status();
    assert_eq!(status.last_index, last + 1, "the wiped follower did not get the log back");
    assert_eq!(status.commit, last + 1);
    assert_eq!(net.applied["n3"].len() as u64, last + 1, "the wiped follower did not re-apply every entry");
}

#[test]
fn proposal_is_applied_everywhere() {
    let mut net = Network::new(3);
    net.elect("n1");
    let (index, term) = net
        .node("n1")
        .propose(Bytes::from_static(b"hello"))
        .unwrap();
    net.settle();
    for id in ids(3) {
        let applied = &net.applied[&id];
        let last = applied.last().unwrap();
        assert_eq!(
            (last.index, last.term, &last.data[..]),
            (index, term, &b"hello"[..]),
            "on {id}"
        );
    }
}

#[test]
fn single_node_commits_alone() {
    let voters = ids(1);
    let mut node = Raft::new(test_config("n1", &voters), RestoredState::default()).unwrap();
    for _ in 0..20 {
        node.tick();
    }
    assert!(node.is_leader());
    let (index, _) = node.propose(Bytes::from_static(b"solo")).unwrap();
    let ready = node.ready();
    assert_eq!(ready.committed_entries.last().map(|e| e.index), Some(index));
}

/// Raft paper, section 5.3 (the optimization that skips a term per
/// rejection): a follower with a long divergent tail catches up in a number
/// of round trips bounded by the number of terms, not of entries.
#[test]
fn fast_back_off_skips_whole_terms() {
    let voters = ids(3);
    let mut leader_terms = vec![1; 5];
    leader_terms.extend(vec![4; 50]);
    let mut follower_terms = vec![1; 5];
    follower_terms.extend(vec![2; 40]);
    follower_terms.extend(vec![3; 40]);
    let states = vec![
        restored(4, &leader_terms),
        restored(3, &follower_terms),
        restored(4, &leader_terms),
    ];
    let mut net = Network::with_states(&voters, states);
    net.isolate("n3");
    net.elect("n1");
    assert!(net.node("n1").is_leader());

    let rejections = net
        .delivered
        .iter()
        .filter(|(from, _, m)| {
            from == "n2" && matches!(m, Message::AppendEntriesResponse { success: false, .. })
        })
        .count();
    assert!(
        rejections <= 2,
        "expected at most 2 rejections, got {rejections}"
    );
    let leader_last = net.node("n1").status().last_index;
    assert_eq!(net.node("n2").status().last_index, leader_last);
    assert_eq!(net.node("n2").status().commit, leader_last);
}

#[test]
fn lagging_follower_gets_snapshot_in_chunks() {
    let mut net = Network::new(3);
    for node in net.nodes.values_mut() {
        node.config.snapshot_chunk_bytes = 4;
    }
    net.elect("n1");
    net.isolate("n3");
    for i in 0..30 {
        net.node("n1")
            .propose(Bytes::from(format!("cmd{i}")))
            .unwrap();
        net.settle();
    }
    let applied = net.node("n1").status().applied;
    net.node("n1")
        .compact(applied, Bytes::from_static(b"state-through-applied"))
        .unwrap();
    assert_eq!(net.node("n1").status().first_index, applied + 1);

    net.heal();
    net.tick_all(20);
    let installed = net.installed.get("n3").cloned().unwrap_or_default();
    assert_eq!(installed.len(), 1, "n3 installed one snapshot");
    let snapshot = &installed[0];
    assert_eq!(snapshot.meta.index, applied);
    assert_eq!(&snapshot.data[..], b"state-through-applied");
    let chunks = net
        .delivered
        .iter()
        .filter(|(_, to, m)| to == "n3" && matches!(m, Message::InstallSnapshot { .. }))
        .count();
    assert!(
        chunks >= 6,
        "21 bytes in 4-byte chunks need 6 messages, saw {chunks}"
    );
    let status = net.node("n3").status();
    assert_eq!(
        status.snapshot,
        Some(SnapshotMeta {
            index: applied,
            term: net.node("n1").term()
        })
    );
    assert_eq!(status.last_index, net.node("n1").status().last_index);
    assert_eq!(
        net.node("n3").status().commit,
        net.node("n1").status().commit
    );
}

#[test]
fn compact_rejects_unapplied_or_compacted_index() {
    let mut net = Network::new(1);
    net.tick_all(25);
    let node = net.node("n1");
    let applied = node.status().applied;
    assert_eq!(
        node.compact(applied + 1, Bytes::new()),
        Err(CompactError::Unapplied {
            index: applied + 1,
            applied
        })
    );
    node.compact(applied, Bytes::new()).unwrap();
    assert_eq!(
        node.compact(applied - 1, Bytes::new()),
        Err(CompactError::Compacted {
            index: applied - 1,
            snapshot_index: applied
        })
    );
}

#[test]
fn messages_from_unknown_nodes_are_ignored() {
    let voters = ids(3);
    let mut node = Raft::new(test_config("n1", &voters), RestoredState::default()).unwrap();
    node.step(
        "intruder",
        Message::RequestVote {
            term: 9,
            candidate_id: "intruder".into(),
            last_log_index: 0,
            last_log_term: 0,
        },
    );
    assert_eq!(node.term(), 0);
    assert!(!node.has_ready());
}

#[test]
fn raft_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Raft>();
    assert_send::<Ready>();
}

#[test]
fn heartbeats_to_unreachable_follower_carry_no_entries() {
    let mut net = Network::new(3);
    net.elect("n1");
    net.isolate("n3");
    for i in 0..10 {
        net.node("n1")
            .propose(Bytes::from(format!("cmd{i}")))
            .unwrap();
    }
    net.settle();
    net.dropped.clear();

    net.tick_all(20);
    let to_n3: Vec<&Message> = net
        .dropped
        .iter()
        .filter(|(_, to, _)| to == "n3")
        .map(|(_, _, m)| m)
        .collect();
    assert!(
        to_n3.len() >= 5,
        "a heartbeat every 2 ticks, saw {}",
        to_n3.len()
    );
    for msg in to_n3 {
        let Message::AppendEntries { entries, .. } = msg else {
            panic!("expected AppendEntries, got {msg:?}");
        };
        assert!(
            entries.is_empty(),
            "heartbeat carries {} entries",
            entries.len()
        );
    }
}

#[test]
fn pre_vote_alone_protects_live_leader() {
    // Check-quorum off: only the pre-vote phase keeps a rejoining node with
    // an up-to-date log from raising the term.
    let voters = ids(3);
    let mut net = Network::new(3);
    for (i, id) in voters.iter().enumerate() {
        let mut config = test_config(id, &voters);
        config.check_quorum = false;
        config.seed = i as u64 + 1;
        net.nodes.insert(
            id.clone(),
            Raft::new(config, RestoredState::default()).unwrap(),
        );
    }
    net.elect("n1");
    let term = net.node("n1").term();
    net.isolate("n3");
    net.tick_all(100);
    net.heal();
    // n3's election timeout fires just as the partition heals.
    net.elect("n3");
    net.tick_all(60);
    assert!(net.node("n1").is_leader(), "n1 still leads");
    assert_eq!(net.node("n1").term(), term, "no node raised the term");
    assert_eq!(net.node("n3").term(), term);
}

#[test]
fn rejection_that_empties_window_resends_backlog() {
    let mut net = Network::new(3);
    net.node("n1").config.max_in_flight = 1;
    net.elect("n1");
    net.cut.insert(("n1".into(), "n2".into()));
    net.node("n1").propose(Bytes::from_static(b"a")).unwrap();
    net.settle();
    // Entry 2 is in flight to n2, so entry 3 waits for the window.
    net.node("n1").propose(Bytes::from_static(b"b")).unwrap();
    net.settle();

    // n2 rejects an older message, but its commit index shows it has entry 2.
    let rejection = Message::AppendEntriesResponse {
        term: net.node("n1").term(),
        success: false,
        node_id: "n2".into(),
        match_index: 2,
        conflict_index: Some(3),
        conflict_term: None,
    };
    net.node("n1").step("n2", rejection);
    let sent = net.node("n1").ready().messages;
    let entries_to_n2: Vec<u64> = sent
        .iter()
        .filter(|(to, _)| to == "n2")
        .flat_map(|(_, m)| match m {
            Message::AppendEntries { entries, .. } => entries.iter().map(|e| e.index).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(
        entries_to_n2,
        vec![3],
        "the leader sends the entry that waited"
    );
}

fn chunk(offset: u64, data: &'static [u8], done: bool) -> Message {
    Message::InstallSnapshot {
        term: 2,
        leader_id: "n2".into(),
        last_included_index: 10,
        last_included_term: 2,
        offset,
        data: Bytes::from_static(data),
        done,
    }
}

fn snapshot_reply(node: &mut Raft) -> (bool, u64) {
    let messages = node.ready().messages;
    match &messages[..] {
        [(
            _,
            Message::InstallSnapshotResponse {
                success,
                next_offset,
                ..
            },
        )] => (*success, *next_offset),
        other => panic!("expected one InstallSnapshotResponse, got {other:?}"),
    }
}

#[test]
fn snapshot_chunks_must_arrive_in_order() {
    let voters = ids(3);
    let mut node = Raft::new(test_config("n1", &voters), RestoredState::default()).unwrap();

    node.step("n2", chunk(4, b"5678", false));
    assert_eq!(
        snapshot_reply(&mut node),
        (false, 0),
        "a chunk past the start of a new transfer"
    );

    node.step("n2", chunk(0, b"1234", false));
    assert_eq!(snapshot_reply(&mut node), (true, 4));

    node.step("n2", chunk(8, b"9", true));
    assert_eq!(
        snapshot_reply(&mut node),
        (false, 4),
        "a gap is rejected with the offset to resume at"
    );

    node.step("n2", chunk(4, b"5678", false));
    assert_eq!(snapshot_reply(&mut node), (true, 8));
    assert_eq!(
        node.status().commit,
        0,
        "nothing is installed before the last chunk"
    );

    node.step("n2", chunk(8, b"9", true));
    let ready = node.ready();
    let snapshot = ready
        .snapshot
        .expect("the last chunk installs the snapshot");
    assert_eq!(&snapshot.data[..], b"123456789");
    assert_eq!(snapshot.meta, SnapshotMeta { index: 10, term: 2 });
    assert!(
        ready.committed_entries.is_empty(),
        "entries covered by the snapshot are not applied"
    );
    let status = node.status();
    assert_eq!(
        (status.commit, status.applied, status.last_index),
        (10, 10, 10)
    );
}

#[test]
fn restart_takes_back_snapshot_data_through_compact() {
    let voters = ids(3);
    let state = RestoredState {
        hard_state: HardState {
            term: 3,
            voted_for: None,
            commit: 5,
        },
        snapshot: Some(SnapshotMeta { index: 5, term: 2 }),
        entries: vec![entry(6, 3, "x")],
    };
    let mut node = Raft::new(test_config("n1", &voters), state).unwrap();
    node.compact(5, Bytes::from_static(b"state@5")).unwrap();
    let status = node.status();
    assert_eq!(status.snapshot, Some(SnapshotMeta { index: 5, term: 2 }));
    assert_eq!(status.first_index, 6);
    assert_eq!(status.last_index, 6, "the entry after the snapshot stays");
}
