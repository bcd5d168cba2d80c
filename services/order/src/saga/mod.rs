//! The order saga: a pure state machine ([`machine`]), the driver that stores
//! its decisions ([`driver`]), the sweeper that enforces step deadlines
//! ([`deadlines`]), and the notifications that wake watchers ([`updates`]).

pub mod deadlines;
pub mod driver;
pub mod machine;
pub mod updates;
