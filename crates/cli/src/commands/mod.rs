//! One module per `microcosm` subcommand.

pub(crate) mod audit;
pub(crate) mod bench;
pub(crate) mod billing;
pub(crate) mod certs;
pub(crate) mod chaos;
pub(crate) mod fault;
pub(crate) mod health;
pub(crate) mod inventory;
pub(crate) mod load;
pub(crate) mod order;
pub(crate) mod top;
pub(crate) mod trace;
pub(crate) mod up;
