//! Data types shared by the core, storage and the peer transport: log
//! entries, the persistent hard state, snapshot metadata and peer messages.
//!
//! Every type here has a JSON form. Byte payloads are Base64 strings in JSON.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Identifier of a cluster member, for example `"Node_A"`.
pub type NodeId = String;

/// One log entry. Empty `data` is the no-op that a new leader appends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub index: u64,
    pub term: u64,
    #[serde(with = "base64_bytes")]
    pub data: Bytes,
}

impl Entry {
    /// Returns the number of payload bytes, used to size AppendEntries batches.
    pub fn payload_len(&self) -> usize {
        self.data.len()
    }
}

/// State that must be on stable storage before any message that depends on it
/// is sent: the current term, the vote cast in it, and the commit index.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HardState {
    pub term: u64,
    pub voted_for: Option<NodeId>,
    pub commit: u64,
}

/// Position of the last log entry that a snapshot covers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub index: u64,
    pub term: u64,
}

/// Application state through `meta.index`, as produced by the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Bytes,
}

/// Peer messages.
///
/// JSON form: `{"type": "APPEND_ENTRIES", "term": 3, "leaderId": "Node_A", ...}`.
/// The first four variants keep the names and fields of the original
/// protocol. The others, and the added fields, are what pre-vote, fast log
/// back-off and snapshot transfer need.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Message {
    #[serde(rename_all = "camelCase")]
    RequestVote {
        term: u64,
        candidate_id: NodeId,
        last_log_index: u64,
        last_log_term: u64,
    },
    #[serde(rename_all = "camelCase")]
    RequestVoteResponse {
        term: u64,
        vote_granted: bool,
        node_id: NodeId,
    },
    /// Asks whether the receiver would vote for the sender in `term` (the
    /// sender's current term + 1). Neither side changes its term or vote.
    #[serde(rename_all = "camelCase")]
    PreVote {
        term: u64,
        candidate_id: NodeId,
        last_log_index: u64,
        last_log_term: u64,
    },
    /// A grant carries the term of the request, and a rejection carries the
    /// responder's current term.
    #[serde(rename_all = "camelCase")]
    PreVoteResponse {
        term: u64,
        vote_granted: bool,
        node_id: NodeId,
    },
    /// Replicates entries. Without entries it is the leader's heartbeat.
    #[serde(rename_all = "camelCase")]
    AppendEntries {
        term: u64,
        leader_id: NodeId,
        prev_log_index: u64,
        prev_log_term: u64,
        entries: Vec<Entry>,
        leader_commit: u64,
    },
    /// On success, `match_index` is the last index the follower has verified
    /// to be identical to the leader's log. On rejection, `conflict_index`
    /// and `conflict_term` tell the leader where to retry, and `match_index`
    /// is the follower's commit index.
    #[serde(rename_all = "camelCase")]
    AppendEntriesResponse {
        term: u64,
        success: bool,
        node_id: NodeId,
        match_index: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conflict_index: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conflict_term: Option<u64>,
    },
    /// One chunk of a snapshot: `data` contains the bytes at `offset`.
    #[serde(rename_all = "camelCase")]
    InstallSnapshot {
        term: u64,
        leader_id: NodeId,
        last_included_index: u64,
        last_included_term: u64,
        offset: u64,
        #[serde(with = "base64_bytes")]
        data: Bytes,
        done: bool,
    },
    /// `next_offset` is the byte offset the follower expects next. A rejected
    /// chunk (wrong offset) gets `success: false` and the offset to resume at.
    #[serde(rename_all = "camelCase")]
    InstallSnapshotResponse {
        term: u64,
        node_id: NodeId,
        success: bool,
        next_offset: u64,
    },
}

impl Message {
    /// Returns the term the message carries.
    pub fn term(&self) -> u64 {
        match self {
            Message::RequestVote { term, .. }
            | Message::RequestVoteResponse { term, .. }
            | Message::PreVote { term, .. }
            | Message::PreVoteResponse { term, .. }
            | Message::AppendEntries { term, .. }
            | Message::AppendEntriesResponse { term, .. }
            | Message::InstallSnapshot { term, .. }
            | Message::InstallSnapshotResponse { term, .. } => *term,
        }
    }

    /// Returns the wire name of the message type, as in the JSON `type` field.
    pub fn type_name(&self) -> &'static str {
        match self {
            Message::RequestVote { .. } => "REQUEST_VOTE",
            Message::RequestVoteResponse { .. } => "REQUEST_VOTE_RESPONSE",
            Message::PreVote { .. } => "PRE_VOTE",
            Message::PreVoteResponse { .. } => "PRE_VOTE_RESPONSE",
            Message::AppendEntries { .. } => "APPEND_ENTRIES",
            Message::AppendEntriesResponse { .. } => "APPEND_ENTRIES_RESPONSE",
            Message::InstallSnapshot { .. } => "INSTALL_SNAPSHOT",
            Message::InstallSnapshotResponse { .. } => "INSTALL_SNAPSHOT_RESPONSE",
        }
    }
}

/// Serde adapter that writes `Bytes` as a standard Base64 string (with
/// padding), for use with `#[serde(with = "base64_bytes")]`.
pub mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &Bytes, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(data))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Bytes, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        STANDARD
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(|e| serde::de::Error::custom(format!("invalid Base64 in byte field: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_vote_keeps_original_wire_names() {
        let msg = Message::RequestVote {
            term: 4,
            candidate_id: "Node_B".into(),
            last_log_index: 9,
            last_log_term: 3,
        };
        let value = serde_json::to_value(&msg).unwrap();
        assert_eq!(
            value,
            json!({"type": "REQUEST_VOTE", "term": 4, "candidateId": "Node_B",
                   "lastLogIndex": 9, "lastLogTerm": 3})
        );
    }

    #[test]
    fn append_entries_encodes_data_as_base64() {
        let msg = Message::AppendEntries {
            term: 2,
            leader_id: "Node_A".into(),
            prev_log_index: 1,
            prev_log_term: 1,
            entries: vec![Entry {
                index: 2,
                term: 2,
                data: Bytes::from_static(b"hi"),
            }],
            leader_commit: 1,
        };
        let value = serde_json::to_value(&msg).unwrap();
        assert_eq!(value["type"], "APPEND_ENTRIES");
        assert_eq!(value["leaderId"], "Node_A");
        assert_eq!(value["prevLogIndex"], 1);
        assert_eq!(value["leaderCommit"], 1);
        assert_eq!(value["entries"][0]["data"], "aGk=");

        let back: Message = serde_json::from_value(value).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn response_without_conflict_hint_parses() {
        let text = r#"{"type":"APPEND_ENTRIES_RESPONSE","term":3,"success":true,"nodeId":"Node_C","matchIndex":7}"#;
        let msg: Message = serde_json::from_str(text).unwrap();
        assert_eq!(
            msg,
            Message::AppendEntriesResponse {
                term: 3,
                success: true,
                node_id: "Node_C".into(),
                match_index: 7,
                conflict_index: None,
                conflict_term: None,
            }
        );
        let again = serde_json::to_string(&msg).unwrap();
        assert!(
            !again.contains("conflictIndex"),
            "None hints are omitted: {again}"
        );
    }

    #[test]
    fn every_variant_round_trips() {
        let messages = vec![
            Message::RequestVoteResponse {
                term: 1,
                vote_granted: true,
                node_id: "a".into(),
            },
            Message::PreVote {
                term: 2,
                candidate_id: "a".into(),
                last_log_index: 0,
                last_log_term: 0,
            },
            Message::PreVoteResponse {
                term: 2,
                vote_granted: false,
                node_id: "b".into(),
            },
            Message::AppendEntriesResponse {
                term: 1,
                success: false,
                node_id: "b".into(),
                match_index: 0,
                conflict_index: Some(3),
                conflict_term: Some(1),
            },
            Message::InstallSnapshot {
                term: 5,
                leader_id: "a".into(),
                last_included_index: 10,
                last_included_term: 4,
                offset: 0,
                data: Bytes::from_static(&[0, 255, 7]),
                done: true,
            },
            Message::InstallSnapshotResponse {
                term: 5,
                node_id: "b".into(),
                success: true,
                next_offset: 3,
            },
        ];
        for msg in messages {
            let text = serde_json::to_string(&msg).unwrap();
            let back: Message = serde_json::from_str(&text).unwrap();
            assert_eq!(back, msg, "round trip of {text}");
        }
    }

    #[test]
    fn invalid_base64_is_an_error() {
        let text = r#"{"index":1,"term":1,"data":"not base64!"}"#;
        let err = serde_json::from_str::<Entry>(text).unwrap_err();
        assert!(err.to_string().contains("invalid Base64"), "{err}");
    }
}
