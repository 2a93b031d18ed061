//! Raft cluster node.
