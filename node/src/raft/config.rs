//! Settings of one Raft node.

use super::message::NodeId;
use super::types::RestoreError;

/// Settings of one node. Times are in ticks, and the node's shell decides
/// how long a tick is (10 ms in the defaults below).
#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    /// All cluster members, this node included.
    pub voters: Vec<NodeId>,
    /// Lower bound of the randomized election timeout, inclusive. Also the
    /// check-quorum period and the leader lease that makes followers ignore
    /// vote requests. Default 15.
    pub election_tick_min: u32,
    /// Upper bound of the randomized election timeout, exclusive. Default 30.
    pub election_tick_max: u32,
    /// Ticks between two heartbeats of a leader. Default 5.
    pub heartbeat_tick: u32,
    /// Run a pre-vote round before raising the term. Default true.
    pub pre_vote: bool,
    /// Step down as leader when a majority was not heard from within
    /// `election_tick_min` ticks, and ignore vote requests while a leader is
    /// known. Default true.
    pub check_quorum: bool,
    /// Maximum entries per AppendEntries. Default 64.
    pub max_append_entries: usize,
    /// Maximum entry payload bytes per AppendEntries. A single entry larger
    /// than this is still sent, alone. Default 8 MiB.
    pub max_append_bytes: usize,
    /// Maximum AppendEntries messages in flight to one follower before the
    /// leader waits for replies. Default 64.
    pub max_in_flight: usize,
    /// Bytes of snapshot data per InstallSnapshot message. Default 1 MiB.
    pub snapshot_chunk_bytes: usize,
    /// Seed of the election-timeout random number generator.
    pub seed: u64,
}

impl Config {
    /// Creates a configuration with the default timing and limits. The seed
    /// defaults to a hash of `id`, so nodes of one cluster draw different
    /// timeouts; set `seed` for other behaviour.
    pub fn new(id: impl Into<NodeId>, voters: Vec<NodeId>) -> Config {
        let id = id.into();
        let seed = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        Config {
            id,
            voters,
            election_tick_min: 15,
            election_tick_max: 30,
            heartbeat_tick: 5,
            pre_vote: true,
            check_quorum: true,
            max_append_entries: 64,
            max_append_bytes: 8 * 1024 * 1024,
            max_in_flight: 64,
            snapshot_chunk_bytes: 1024 * 1024,
            seed,
        }
    }

    /// Checks the settings that the core relies on.
    pub fn validate(&self) -> Result<(), RestoreError> {
        let invalid = |reason: String| Err(RestoreError::InvalidConfig { reason });

        if !self.voters.contains(&self.id) {
            return invalid(format!(
                "voters {:?} do not include this node {:?}",
                self.voters, self.id
            ));
        }

        let mut sorted = self.voters.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != self.voters.len() {
            return invalid(format!("voters {:?} contain a duplicate id", self.voters));
        }

        if self.heartbeat_tick == 0 {
            return invalid("heartbeat_tick must be at least 1".into());
        }

        if self.election_tick_min <= self.heartbeat_tick {
            return invalid(format!(
                "election_tick_min ({}) must be greater than heartbeat_tick ({})",
                self.election_tick_min, self.heartbeat_tick
            ));
        }

        if self.election_tick_max <= self.election_tick_min {
            return invalid(format!(
                "election_tick_max ({}) must be greater than election_tick_min ({})",
                self.election_tick_max, self.election_tick_min
            ));
        }

        if self.max_append_entries == 0 || self.max_in_flight == 0 || self.snapshot_chunk_bytes == 0
        {
            return invalid(
                "max_append_entries, max_in_flight and snapshot_chunk_bytes must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }
}
