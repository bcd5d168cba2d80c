//! The runtime fault flags (docs/scenarios.md), each switched on against real
//! services, with the outcome the scenario promises — and the audit clean after.

mod flags;
mod scenarios;
mod support;
