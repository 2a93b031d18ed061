//! Client side of the cluster: the wire types shared with `node`, plus (with the
//! `cli` feature) the reconnecting TCP client, the CLI, the stress tester and the web app.
//!
//! Layout:
//! - `wire`: request and response types of the JSON-lines protocol, name and vector checks.

pub mod wire;
