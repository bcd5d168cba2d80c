//! The participants' replies (`inventory.evt.*`, `billing.evt.*`), turned into
//! saga events and applied exactly once.

mod replies;

pub use replies::SagaReplies;
