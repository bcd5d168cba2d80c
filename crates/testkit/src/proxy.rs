//! A TCP fault proxy between a service and one of its dependencies (its PostgreSQL,
//! or NATS), for the faults that stopping the dependency cannot produce: added
//! latency on a live connection, connections cut in the middle of a transaction or a
//! publish, and a partition in which new connections are refused.
//!
//! The proxy runs inside the test process on its own loopback port; the service is
//! configured with the proxy's address instead of the dependency's. Each accepted
//! connection gets its own connection to the target and two pumps (one per
//! direction). With latency set, every chunk read is forwarded `latency` after it
//! arrived, in order, without limiting throughput: a delay line, as a slow network
//! behaves, not a bottleneck.
//!
//! A cut resets both sides (`SO_LINGER` 0, so the peers see `ECONNRESET`, not an
//! orderly close): exactly what a service sees when a firewall or a crashed load
//! balancer drops its connection mid-transaction.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The most bytes one read takes off a socket.
const CHUNK_BYTES: usize = 16 * 1024;
/// Chunks in flight per direction (delayed, not yet written) before reading pauses.
const CHUNKS_IN_FLIGHT: usize = 256;

/// A running proxy from a loopback port to `target`. Dropping it stops accepting and
/// resets every connection it carries.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: JoinHandle<()>,
}

/// What a proxy has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted and relayed to the target.
    pub relayed: u64,
    /// Connections refused (closed at once) while partitioned.
    pub refused: u64,
    /// Connections reset by [`FaultProxy::cut_connections`] or [`FaultProxy::partition`].
    pub cut: u64,
}

#[derive(Debug)]
struct Shared {
    target: SocketAddr,
    latency_micros: AtomicU64,
    partitioned: AtomicBool,
    /// Bumped to reset every open connection.
    cuts: watch::Sender<u64>,
    open: AtomicUsize,
    relayed: AtomicU64,
    refused: AtomicU64,
    cut: AtomicU64,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port, forwarding to `target`.
    pub async fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("could not bind the fault proxy's port")?;
        let addr = listener
            .local_addr()
            .context("could not read the fault proxy's port")?;
        let shared = Arc::new(Shared {
            target,
            latency_micros: AtomicU64::new(0),
            partitioned: AtomicBool::new(false),
            cuts: watch::channel(0).0,
            open: AtomicUsize::new(0),
            relayed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            cut: AtomicU64::new(0),
        });
        let acceptor = tokio::spawn(accept(listener, Arc::clone(&shared)));
        Ok(Self {
            addr,
            shared,
            acceptor,
        })
    }

    /// The address to give the service instead of the target's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where the proxy forwards to.
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// Delays every chunk, in both directions, by `latency` (zero: no delay). Applies
    /// to open connections too, from the next chunk on.
    pub fn set_latency(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.shared.latency_micros.store(micros, Ordering::Relaxed);
    }

    /// Resets every open connection; new ones are accepted as before. Returns how
    /// many were cut.
    pub fn cut_connections(&self) -> usize {
        let open = self.shared.open.load(Ordering::SeqCst);
        self.shared.cuts.send_modify(|generation| *generation += 1);
        open
    }

    /// A partition: resets every open connection and refuses new ones until
    /// [`FaultProxy::heal`]. Returns how many were cut.
    pub fn partition(&self) -> usize {
        self.shared.partitioned.store(true, Ordering::SeqCst);
        self.cut_connections()
    }

    /// Ends a partition: new connections are relayed again.
    pub fn heal(&self) {
        self.shared.partitioned.store(false, Ordering::SeqCst);
    }

    /// Connections currently relayed.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Counts of what the proxy has done.
    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            relayed: self.shared.relayed.load(Ordering::SeqCst),
            refused: self.shared.refused.load(Ordering::SeqCst),
            cut: self.shared.cut.load(Ordering::SeqCst),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.shared.cuts.send_modify(|generation| *generation += 1);
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(error) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(%error, "fault proxy could not accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if shared.partitioned.load(Ordering::SeqCst) {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            reset(&client);
            continue;
        }
        tokio::spawn(relay(client, Arc::clone(&shared)));
    }
}

/// Counts a connection as open for as long as it lives.
struct OpenConnection<'a>(&'a Shared);

impl<'a> OpenConnection<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.open.fetch_add(1, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn relay(mut client: TcpStream, shared: Arc<Shared>) {
    // Subscribed before connecting, so a cut issued from here on reaches this connection.
    let mut cuts = shared.cuts.subscribe();
    let Ok(mut upstream) = TcpStream::connect(shared.target).await else {
        // The target is down: the client sees its connection refused, as it would
        // without the proxy.
        reset(&client);
        return;
    };
    for stream in [&client, &upstream] {
        // Latency is the proxy's to add, not Nagle's.
        let _ = stream.set_nodelay(true);
    }
    shared.relayed.fetch_add(1, Ordering::SeqCst);
    let _open = OpenConnection::new(&shared);
    let was_cut = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        let pumps = async {
            tokio::join!(
                pump(client_read, upstream_write, &shared),
                pump(upstream_read, client_write, &shared),
            )
        };
        tokio::select! {
            _ = pumps => false,
            _ = cuts.changed() => true,
        }
    };
    if was_cut {
        shared.cut.fetch_add(1, Ordering::SeqCst);
        reset(&client);
        reset(&upstream);
    }
}

/// Makes the next close of `stream` a reset (RST) instead of an orderly FIN.
fn reset(stream: &TcpStream) {
    let _ = stream.set_zero_linger();
}

/// Copies one direction: a reader that stamps each chunk with the moment it may be
/// written, and a writer that waits for that moment. Ends when the reader sees the
/// end of the stream (then shuts the other side's writing half down) or either side
/// fails.
async fn pump<R, W>(mut from: R, mut to: W, shared: &Shared)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let (chunks, mut delayed) = mpsc::channel::<(Instant, Vec<u8>)>(CHUNKS_IN_FLIGHT);
    let read = async move {
        let mut buffer = vec![0; CHUNK_BYTES];
        while let Ok(read @ 1..) = from.read(&mut buffer).await {
            let latency = Duration::from_micros(shared.latency_micros.load(Ordering::Relaxed));
            let due = Instant::now() + latency;
            if chunks.send((due, buffer[..read].to_vec())).await.is_err() {
                return;
            }
        }
    };
    let write = async move {
        while let Some((due, chunk)) = delayed.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}
