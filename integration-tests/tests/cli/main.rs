//! The `microcosm` command line's client commands (`order`, `inventory`,
//! `billing`, and `load`) run as a real process against a real stack: what they print, as
//! text and as JSON, and the exit codes scripts rely on — 0 done, 1 refused by
//! the service, 2 usage error, 3 service unreachable.

mod accounts_and_stock;
mod load;
mod orders;
mod support;
mod usage_and_reachability;
