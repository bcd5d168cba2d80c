//! Real servers for Microcosm's tests: a private PostgreSQL, a private nats-server
//! with JetStream, and the three service binaries, each on a free loopback port.
//!
//! Nothing here is a mock. Failure tests kill, stop and freeze these processes for
//! real, so what they prove about the outbox, the inbox and the saga holds for the
//! deployed system too. The same process management backs `microcosm up`, which is
//! why data directories can be persistent paths as well as temp dirs.
//!
//! # Teardown guarantees
//!
//! - Every handle ([`Postgres`], [`Nats`], [`ServiceProcess`], [`Stack`]) kills its
//!   processes and deletes its temp dir when dropped, including while a failed
//!   assertion unwinds.
//! - Each child is killed together with everything it forked (its process group and
//!   all descendants), so no PostgreSQL backend outlives its postmaster.
//! - If the test process dies without unwinding, the kernel kills the children
//!   (`PR_SET_PDEATHSIG`); only their temp dirs are then left behind.
//! - The kit never touches the machine's shared servers (PostgreSQL on 5432, NATS on
//!   4222): it only starts its own, and binds only to 127.0.0.1.
//!
//! Spawn from async code, not from `spawn_blocking`: the kernel's parent-death signal
//! fires when the spawning *thread* exits, and tokio retires idle blocking threads.

pub mod collector;
pub mod env_file;
pub mod nats;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod service;
pub mod stack;
pub mod work;

mod binaries;
mod process_tree;
mod readiness;
mod run_as;

pub use binaries::{nats_server_binary, postgres_bin_dir, service_binary};
pub use collector::{CollectedPoint, CollectedSpan, CollectorFiles, OtlpCollector};
pub use nats::Nats;
/// The signals tests send to processes (SIGTERM, SIGINT, ...), re-exported.
pub use nix::sys::signal::Signal;
pub use ports::free_port;
pub use postgres::Postgres;
pub use process::ManagedProcess;
pub use proxy::{FaultProxy, ProxyStats};
pub use service::{ServiceDatabase, ServiceKind, ServiceOptions, ServiceProcess};
pub use stack::{ServiceProxies, Stack, StackOptions};
/// The health status the services report, re-exported for assertions.
pub use tonic_health::pb::health_check_response::ServingStatus;
pub use work::{MeteredProcess, WorkMeter, WorkReading};
