//! Client side of the cluster: the wire types shared with `node`, plus the reconnecting
//! TCP client (feature `net`) and the CLI, stress tester and web app (feature `cli`).
//!
//! Layout:
//! - `wire`: request and response types of the JSON-lines protocol, name and vector checks.
//! - `net`: the async client: round-robin over nodes, leader hints, retries with the same
//!   request id, timeouts, typed helpers.
//! - `stress`: the load generator behind `client stress`, with its percentile math.
//! - `web`: the warp web client behind `client web`.
//! - `cli`: flag parsing, subcommands and exit codes of the `client` binary.

pub mod wire;

#[cfg(feature = "net")]
pub mod net;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod stress;
#[cfg(feature = "cli")]
pub mod web;
