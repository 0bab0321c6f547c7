//! The fault-injecting proxy: one accept task, one task per proxied
//! connection, two pumps (one per direction) in each.

use std::{
    io,
    net::{Ipv4Addr, Shutdown, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use socket2::SockRef;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{ReadHalf, WriteHalf},
    },
    sync::watch,
    task::{JoinHandle, JoinSet},
    time::{Instant, sleep, timeout, timeout_at},
};

/// After a [`Fault::CutAfter`], how long the proxy keeps discarding what
/// each side still sends while it waits for that side's EOF. A side that
/// has not closed by then is reset.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The most bytes one pump reads at a time.
const CHUNK: usize = 16 * 1024;
/// The most bytes [`Fault::Coalesce`] gathers into one write.
const COALESCE_MAX: usize = 1024 * 1024;
/// Pause after a failed `accept()` (e.g. EMFILE), so the loop cannot spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// One direction of a proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client (the side that connected to the proxy) to the
    /// upstream server.
    ToServer,
    /// From the upstream server back to the client.
    ToClient,
}

/// What a [`FaultProxy`] does to the streams it forwards.
///
/// Unless a variant names a [`Direction`], it applies to both directions,
/// and each direction counts its own bytes: "after `n` bytes" means after
/// `n` bytes have been forwarded in that direction. The byte counts are
/// exact: a pump never reads past the next trigger point.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use asyncproto_testkit::{Direction, Fault};
///
/// let faults = [
///     Fault::Delay(Duration::from_millis(2)),
///     Fault::Stall { after: 4096, for_: Duration::from_millis(200) },
///     Fault::HalfClose { dir: Direction::ToServer, after: 100 },
///     Fault::Reset { after: 65_536 },
/// ];
/// # let _ = faults;
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwards faithfully, EOF and resets included.
    None,
    /// Waits this long before forwarding each chunk read (up to 16 KiB).
    Delay(Duration),
    /// Forwards every byte as its own write (`TCP_NODELAY` is on, so in
    /// its own segment as far as the kernel allows), one after the other.
    SplitBytes,
    /// After the first byte of a burst, keeps reading for this long (or
    /// until 1 MiB is gathered, or EOF), then forwards it all in one write.
    Coalesce(Duration),
    /// Forwards `after` bytes, then stops forwarding (and reading) that
    /// direction for `for_`, once; then forwards normally.
    Stall {
        /// Bytes forwarded before the stall.
        after: usize,
        /// How long the stall lasts.
        for_: Duration,
    },
    /// Forwards `after` bytes toward the `dir` side, then shuts down the
    /// proxy's write side toward it (it reads EOF, as if its peer had
    /// called `shutdown(SHUT_WR)`), and from then on reads and discards
    /// what the other side still sends that way. The other direction is
    /// forwarded normally.
    HalfClose {
        /// The side that gets the early EOF.
        dir: Direction,
        /// Bytes forwarded toward it before the EOF.
        after: usize,
    },
    /// As soon as `after` bytes have been forwarded in either direction,
    /// sets `SO_LINGER` 0 on both sockets and closes them: both sides get a
    /// TCP RST mid-stream. What the proxy had not yet handed to the kernel,
    /// or the kernel had not yet sent, is lost.
    Reset {
        /// Bytes forwarded (in one direction) before the reset.
        after: usize,
    },
    /// As soon as this many bytes have been forwarded in either direction,
    /// stops forwarding and closes both sides in order: each gets a FIN
    /// (EOF) after what had been forwarded; what they still send is read
    /// and discarded until their own EOF (at most [`DRAIN_TIMEOUT`]), then
    /// the sockets are closed.
    CutAfter(usize),
}

/// A TCP proxy on `127.0.0.1` that forwards each connection to one
/// upstream address, applying a [`Fault`].
///
/// For each accepted connection it connects to the upstream (resetting the
/// client if that fails) and forwards both directions. An EOF from one side
/// is passed on as a half-close (`shutdown(SHUT_WR)`) to the other; an error
/// on either side (a reset, a write to a closed peer) resets both. A
/// proxied connection ends, and its task with it, once both directions
/// have seen EOF, or at the first error or reset, or after a cut.
///
/// Dropping the proxy stops it: the listening socket stops accepting at
/// once and every proxied connection's task is aborted (closing both of its
/// sockets) the next time the runtime runs.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    listener: Arc<TcpListener>,
    accept: JoinHandle<()>,
    stats: Arc<Stats>,
}

#[derive(Debug)]
struct Stats {
    accepted: AtomicUsize,
    active: watch::Sender<usize>,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and proxies every connection to `upstream`
    /// with `fault`.
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::InvalidInput`] if `upstream` is not a loopback
    /// address; the OS error if binding fails.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (the accept loop is spawned on it).
    pub fn start(upstream: SocketAddr, fault: Fault) -> io::Result<Self> {
        if !upstream.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "FaultProxy forwards to loopback addresses only",
            ));
        }
        let std_listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        std_listener.set_nonblocking(true)?;
        let listener = Arc::new(TcpListener::from_std(std_listener)?);
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats {
            accepted: AtomicUsize::new(0),
            active: watch::Sender::new(0),
        });
        let accept = tokio::spawn(accept_loop(
            Arc::clone(&listener),
            upstream,
            fault,
            Arc::clone(&stats),
        ));
        Ok(Self {
            addr,
            listener,
            accept,
            stats,
        })
    }

    /// The address to connect to instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections the proxy has accepted so far.
    pub fn accepted(&self) -> usize {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    /// How many proxied connections are still running.
    pub fn active(&self) -> usize {
        *self.stats.active.borrow()
    }

    /// Waits until no proxied connection is running (returns at once if
    /// none is). A connection the proxy has not accepted yet does not
    /// count.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_idle(&self) {
        let mut rx = self.stats.active.subscribe();
        // The sender lives in `self.stats`, so the channel cannot close.
        let _ = rx.wait_for(|&n| n == 0).await;
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Out of LISTEN now: a connect made right after the drop is refused
        // even before the aborted accept task has dropped the listener.
        let _ = SockRef::from(&*self.listener).shutdown(Shutdown::Both);
        // Aborting the accept task drops its JoinSet, which aborts every
        // proxied connection's task.
        self.accept.abort();
    }
}

/// Counts a proxied connection as active for as long as it lives.
struct Active(Arc<Stats>);

impl Active {
    fn new(stats: &Arc<Stats>) -> Self {
        stats.accepted.fetch_add(1, Ordering::SeqCst);
        stats.active.send_modify(|n| *n += 1);
        Self(Arc::clone(stats))
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.send_modify(|n| *n -= 1);
    }
}

async fn accept_loop(
    listener: Arc<TcpListener>,
    upstream: SocketAddr,
    fault: Fault,
    stats: Arc<Stats>,
) {
    let mut pairs = JoinSet::new();
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((client, _)) => {
                    let active = Active::new(&stats);
                    pairs.spawn(async move {
                        let _active = active;
                        proxy_one(client, upstream, fault).await;
                    });
                }
                // Transient (ECONNABORTED) or out of resources (EMFILE):
                // retry, without spinning.
                Err(_) => sleep(ACCEPT_BACKOFF).await,
            },
            Some(_) = pairs.join_next(), if !pairs.is_empty() => {}
        }
    }
}

/// How one pump ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The source sent EOF; it was passed on (or the direction was
    /// half-closed by the fault and then drained to EOF).
    Eof,
    /// A read or write failed (reset, broken pipe): reset both sides.
    Failed,
    /// [`Fault::Reset`] fired.
    Reset,
    /// [`Fault::CutAfter`] fired.
    Cut,
}

/// How a proxied connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Both directions saw EOF: close both sockets normally.
    Closed,
    /// Reset both sides.
    Reset,
    /// FIN to both sides, drain, close.
    Cut,
}

async fn proxy_one(mut client: TcpStream, upstream: SocketAddr, fault: Fault) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        reset(&client);
        return;
    };
    // Without it, SplitBytes' one-byte writes would be merged by Nagle.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let end = {
        let (client_r, client_w) = client.split();
        let (server_r, server_w) = server.split();
        let up = pump(client_r, server_w, Direction::ToServer, fault);
        let down = pump(server_r, client_w, Direction::ToClient, fault);
        both(up, down).await
    };
    match end {
        End::Closed => {}
        End::Reset => {
            reset(&client);
            reset(&server);
        }
        End::Cut => {
            let _ = SockRef::from(&client).shutdown(Shutdown::Write);
            let _ = SockRef::from(&server).shutdown(Shutdown::Write);
            let drained = timeout(DRAIN_TIMEOUT, async {
                tokio::join!(discard(&mut client), discard(&mut server))
            })
            .await;
            if !matches!(drained, Ok((Outcome::Eof, Outcome::Eof))) {
                reset(&client);
                reset(&server);
            }
        }
    }
}

/// Runs both pumps until both reached EOF, or one failed or fired a fault
/// that ends the connection (the other is then dropped mid-way).
async fn both(up: impl Future<Output = Outcome>, down: impl Future<Output = Outcome>) -> End {
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        let outcome = tokio::select! {
            o = &mut up, if !up_done => {
                up_done = true;
                o
            }
            o = &mut down, if !down_done => {
                down_done = true;
                o
            }
        };
        match outcome {
            Outcome::Eof => {}
            Outcome::Failed | Outcome::Reset => return End::Reset,
            Outcome::Cut => return End::Cut,
        }
    }
    End::Closed
}

/// Forwards one direction, applying `fault`.
async fn pump(
    mut src: ReadHalf<'_>,
    mut dst: WriteHalf<'_>,
    dir: Direction,
    fault: Fault,
) -> Outcome {
    let mut buf = vec![0; CHUNK];
    let mut gathered = Vec::new();
    let mut sent = 0usize;
    let mut stalled = false;
    loop {
        // Count-triggered faults fire as soon as their count is reached,
        // before anything more is read. `limit` is how much may still go
        // before the next trigger.
        let limit = match fault {
            Fault::Reset { after } if sent >= after => return Outcome::Reset,
            Fault::CutAfter(n) if sent >= n => return Outcome::Cut,
            Fault::HalfClose { dir: d, after } if d == dir && sent >= after => {
                let _ = dst.shutdown().await;
                return discard_half(&mut src, &mut buf).await;
            }
            Fault::Stall { after, for_ } if !stalled && sent >= after => {
                stalled = true;
                sleep(for_).await;
                usize::MAX
            }
            Fault::Stall { after, .. } if !stalled => after - sent,
            Fault::HalfClose { dir: d, after } if d == dir => after - sent,
            Fault::Reset { after } | Fault::CutAfter(after) => after - sent,
            _ => usize::MAX,
        };
        let want = limit.min(CHUNK);
        let n = match src.read(&mut buf[..want]).await {
            Ok(0) => {
                let _ = dst.shutdown().await;
                return Outcome::Eof;
            }
            Ok(n) => n,
            Err(_) => return Outcome::Failed,
        };
        let res = match fault {
            Fault::Delay(d) => {
                sleep(d).await;
                dst.write_all(&buf[..n]).await
            }
            Fault::SplitBytes => split_bytes(&mut dst, &buf[..n]).await,
            Fault::Coalesce(d) => {
                gathered.clear();
                gathered.extend_from_slice(&buf[..n]);
                let (eof, ok) = gather(&mut src, &mut buf, &mut gathered, d).await;
                if !ok {
                    return Outcome::Failed;
                }
                sent += gathered.len() - n;
                let res = dst.write_all(&gathered).await;
                if eof && res.is_ok() {
                    let _ = dst.shutdown().await;
                    return Outcome::Eof;
                }
                res
            }
            _ => dst.write_all(&buf[..n]).await,
        };
        if res.is_err() {
            return Outcome::Failed;
        }
        sent += n;
    }
}

async fn split_bytes(dst: &mut WriteHalf<'_>, data: &[u8]) -> io::Result<()> {
    for b in data {
        dst.write_all(std::slice::from_ref(b)).await?;
        dst.flush().await?;
    }
    Ok(())
}

/// Reads into `gathered` until `window` has passed, 1 MiB is gathered or
/// EOF. Returns (EOF seen, no error).
async fn gather(
    src: &mut ReadHalf<'_>,
    buf: &mut [u8],
    gathered: &mut Vec<u8>,
    window: Duration,
) -> (bool, bool) {
    let deadline = Instant::now() + window;
    while gathered.len() < COALESCE_MAX {
        let room = (COALESCE_MAX - gathered.len()).min(buf.len());
        // Cancel safe: a read that times out has taken nothing.
        match timeout_at(deadline, src.read(&mut buf[..room])).await {
            Err(_) => break,
            Ok(Ok(0)) => return (true, true),
            Ok(Ok(k)) => gathered.extend_from_slice(&buf[..k]),
            Ok(Err(_)) => return (false, false),
        }
    }
    (false, true)
}

/// Reads and drops what `src` sends until its EOF.
async fn discard_half(src: &mut ReadHalf<'_>, buf: &mut [u8]) -> Outcome {
    loop {
        match src.read(buf).await {
            Ok(0) => return Outcome::Eof,
            Ok(_) => {}
            Err(_) => return Outcome::Failed,
        }
    }
}

/// Reads and drops what `stream` sends until its EOF.
async fn discard(stream: &mut TcpStream) -> Outcome {
    let mut buf = vec![0; CHUNK];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return Outcome::Eof,
            Ok(_) => {}
            Err(_) => return Outcome::Failed,
        }
    }
}

/// Makes the close of `stream` (when it is dropped) send RST.
fn reset(stream: &TcpStream) {
    let _ = SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

#[cfg(test)]
mod tests;
