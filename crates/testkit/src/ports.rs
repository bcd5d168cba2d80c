//! Free loopback ports, so every server the kit starts gets its own.
//!
//! The machine may already run a shared PostgreSQL on 5432 and NATS on 4222, and
//! several tests run at once: fixed ports would collide with both. Asking the kernel
//! for port 0 and releasing it leaves a short window in which another program could
//! take the port; in practice nothing else on a test machine binds ephemeral ports,
//! and the kit remembers what it handed out so two servers in one process never get
//! the same one.

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, PoisonError};

/// Ports this process has already handed out, never given twice.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// How often to ask the kernel again when it returns a port already handed out.
const ATTEMPTS: usize = 64;

/// A loopback TCP port that was free a moment ago and that this process has not handed
/// out before.
pub fn free_port() -> io::Result<u16> {
    for _ in 0..ATTEMPTS {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        format!("the kernel kept offering ports this test process already uses ({ATTEMPTS} tries)"),
    ))
}
