//! Failure isolation on real processes: every part of the system is killed,
//! paused, stopped or cut off while orders flow — and afterwards every order has
//! reached a final state and the audit across the three databases is clean.
//!
//! - `processes`: a participant or the orchestrator SIGKILLed, NATS stopped.
//! - `databases`: one service's own PostgreSQL stopped while the others run on.
//! - `proxies`: latency, cut connections and partitions between a service and its
//!   database or NATS, through the test kit's TCP fault proxy.
//! - `redelivery`: a share of all acks dropped at volume.
//!
//! A participant paused past the step deadline, and poison messages, are in the
//! saga suite (`tests/saga/deadlines.rs`, `tests/saga/exactly_once.rs`).

mod databases;
mod processes;
mod proxies;
mod redelivery;
mod support;
