//! The order saga end to end, on real PostgreSQL, nats-server and service
//! processes: every outcome, cancel at every stage, deadlines, exactly-once
//! effects under duplicates and poison messages, API composition, and 500
//! concurrent orders over scarce stock and money — each ending with the audit
//! across the three databases clean.

mod cancel;
mod composition;
mod concurrency;
mod deadlines;
mod events;
mod exactly_once;
mod outcomes;
mod replicas;
mod support;
mod work;
