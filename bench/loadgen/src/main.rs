//! `loadgen`: the load generator of asyncproto's benchmark suite (issue #4).
//!
//! ```text
//! loadgen --addr 127.0.0.1:8888 --mode rr|stream|connect|idle
//!         [--duration S] [--warmup S] [--conns N] [--size BYTES]
//!         [--threads N] [--server-pid PID] [--count N] [--tag KEY=VALUE]...
//!         [--tls-ca PEM [--tls-server-name NAME]]
//! ```
//!
//! Modes:
//!
//! - `rr`: `--conns` connections, each sends `--size` bytes and waits for the
//!   whole echo before sending the next; requests/s and latency percentiles
//!   (an HDR histogram, nanosecond resolution). With `--count N` the run stops
//!   after N round trips in total instead of after `--duration` (for
//!   fixed-work runs under callgrind or strace).
//! - `stream`: each connection writes `--size`-byte chunks continuously while
//!   it reads the echo; MB/s echoed.
//! - `connect`: `--conns` concurrent loops of connect, one small echo, close;
//!   connections/s.
//! - `idle`: opens `--conns` connections, one echo of `--size` bytes on each,
//!   holds them for `--duration` and reports the server's RSS per connection
//!   (`VmRSS` in `/proc/PID/status`, before and after; needs `--server-pid`).
//!
//! **Every byte echoed is verified**: connection `i` sends the bytes of a fixed
//! pseudo-random sequence (period a prime of about 1 MiB) starting at its own
//! offset, and every byte it reads back must be the next one of that
//! sequence, so a lost, duplicated, reordered or foreign byte is a mismatch.
//! A mismatch, an unexpected EOF or an I/O error ends the run with a message
//! on stderr and exit status 1: a server that corrupts data is never "fast".
//!
//! With `--server-pid`, the server's CPU time (utime + stime from
//! `/proc/PID/stat`) is read at the start and the end of the measured window,
//! so the result carries the server's CPU per request (or per MB).
//!
//! With `--tls-ca` every mode runs over TLS (tokio-rustls, ring): each
//! connection does a full handshake (the client keeps no sessions, so
//! `connect` counts full handshakes), verifying the server's certificate
//! against the CAs in that file and its name against `--tls-server-name`
//! (default `localhost`); each `connect` loop closes with `close_notify` and
//! waits for the server's (the other modes drop their connections after
//! the measurement, as over plain TCP). The plain path is
//! the same code as before TLS existed: the modes are generic over the
//! stream type, monomorphised once for `TcpStream` and once for the TLS
//! stream.
//!
//! The result is one JSON object on one line on stdout; `--tag KEY=VALUE`
//! pairs are copied into it (the run script labels rows with them).

mod pem;

use std::{
    future::Future,
    io,
    net::SocketAddr,
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, OnceLock},
    time::Duration,
};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use rustls::{ClientConfig, client::Resumption, pki_types::ServerName};
use serde_json::{Map, Value, json};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    task::JoinSet,
    time::{Instant, sleep_until, timeout_at},
};
use tokio_rustls::{TlsConnector, client::TlsStream};

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Verifying load generator for echo servers")]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:8888")]
    addr: SocketAddr,
    /// Workload.
    #[arg(long, value_enum, default_value_t = Mode::Rr)]
    mode: Mode,
    /// Measured window, seconds (idle: how long the connections are held).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Load before the measured window, seconds (not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Connections (rr, stream, idle) or concurrent connect loops (connect).
    #[arg(long, default_value_t = 1)]
    conns: usize,
    /// Message size (rr, connect, idle) or write size (stream), bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Tokio worker threads of the load generator (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// The server's process id: its CPU time and RSS are reported.
    #[arg(long)]
    server_pid: Option<u32>,
    /// rr only: stop after this many round trips in total (no warm-up, no
    /// duration).
    #[arg(long)]
    count: Option<u64>,
    /// rr only: pause this many microseconds after each round trip (the
    /// worker thread sleeps: meant for `--conns 1`), so that the server goes
    /// idle and waits for every message, as it does when the client is not
    /// slowed down by a profiler wrapped around the server.
    #[arg(long, default_value_t = 0)]
    think_us: u64,
    /// `KEY=VALUE` copied into the JSON result (repeatable).
    #[arg(long = "tag", value_parser = parse_tag)]
    tags: Vec<(String, String)>,
    /// Run over TLS, trusting the CA certificates in this PEM file (the
    /// server's certificate chain and name are verified).
    #[arg(long, value_name = "PEM")]
    tls_ca: Option<PathBuf>,
    /// With `--tls-ca`: the name the server's certificate must hold (SNI).
    #[arg(long, value_name = "NAME", default_value = "localhost")]
    tls_server_name: String,
}

/// The workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Request/response: send, wait for the whole echo, repeat.
    Rr,
    /// Continuous writes while reading the echo.
    Stream,
    /// Connect, one small echo, close.
    Connect,
    /// Open connections, one echo each, hold; server RSS per connection.
    Idle,
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

/// Largest `--size` accepted (bytes).
const MAX_SIZE: usize = 1 << 20;
/// Read buffer of the stream and verification paths (bytes).
const READ_BUF: usize = 256 * 1024;
/// Period of the verification sequence: a prime, so no plausible loss or
/// duplication (a multiple of it) goes unnoticed.
const PATTERN_PERIOD: usize = 1_048_573;
/// Distance between the start offsets of two connections' sequences.
const CONN_STRIDE: u64 = 104_729;
/// Connections being opened at once in `idle` mode (below the servers'
/// listen backlog of 100).
const IDLE_OPENERS: usize = 64;

/// The verification sequence, extended by `MAX_SIZE` bytes so that any
/// window of up to `MAX_SIZE` bytes is one contiguous slice.
struct Pattern(Vec<u8>);

impl Pattern {
    fn get() -> &'static Self {
        static P: OnceLock<Pattern> = OnceLock::new();
        P.get_or_init(|| {
            // xorshift64*: fixed seed, so every run sends the same bytes.
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
            let mut v = Vec::with_capacity(PATTERN_PERIOD + MAX_SIZE);
            for _ in 0..PATTERN_PERIOD {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                v.push(x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_be_bytes()[0]);
            }
            for i in 0..MAX_SIZE {
                v.push(v[i]);
            }
            Self(v)
        })
    }

    /// The `len` bytes of the sequence starting at stream offset `off`.
    fn window(&self, off: u64, len: usize) -> &[u8] {
        debug_assert!(len <= MAX_SIZE);
        #[allow(clippy::cast_possible_truncation, reason = "reduced modulo the period")]
        let start = (off % PATTERN_PERIOD as u64) as usize;
        &self.0[start..start + len]
    }

    /// Checks that `got` is the sequence from offset `off`.
    fn verify(&self, conn: usize, off: u64, got: &[u8]) -> io::Result<()> {
        let mut done = 0;
        while done < got.len() {
            let n = (got.len() - done).min(MAX_SIZE);
            let want = self.window(off + done as u64, n);
            let part = &got[done..done + n];
            if part != want {
                let i = part.iter().zip(want).position(|(a, b)| a != b).unwrap_or(0);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "echo mismatch on connection {conn} at stream offset {}: got {:#04x}, want {:#04x}",
                        off + (done + i) as u64,
                        part[i],
                        want[i]
                    ),
                ));
            }
            done += n;
        }
        Ok(())
    }
}

/// The measured window, shared by every connection task.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    end: Instant,
}

impl Window {
    fn contains(&self, t0: Instant, t1: Instant) -> bool {
        t0 >= self.start && t1 <= self.end
    }
}

/// What one connection task measured.
struct Stats {
    hist: Histogram<u64>,
    /// Round trips (rr), connections (connect) or bytes (stream) in the window.
    count: u64,
    verified: u64,
}

impl Stats {
    fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds"),
            count: 0,
            verified: 0,
        }
    }

    fn merge(&mut self, other: &Self) {
        self.hist.add(&other.hist).expect("same histogram bounds");
        self.count += other.count;
        self.verified += other.verified;
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn ctx(what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr)
        .await
        .map_err(|e| ctx("connect", e))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// How connections are opened, written and closed: plain TCP ([`Plain`]) or
/// TLS over it ([`Tls`]). The modes are generic over it, so the plain path
/// compiles to the code it was before TLS existed.
trait Dial: Clone + Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    type Reader: AsyncRead + Unpin + Send + 'static;
    type Writer: AsyncWrite + Unpin + Send + 'static;

    /// A connected stream, `TCP_NODELAY` on (and, over TLS, handshaken).
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Writes all of `buf` and hands it to the socket.
    fn send(s: &mut Self::Stream, buf: &[u8]) -> impl Future<Output = io::Result<()>> + Send;

    /// Read and write halves for the `stream` mode.
    fn split(s: Self::Stream) -> (Self::Reader, Self::Writer);

    /// Ends a connection after its last echo (`connect` mode).
    fn close(s: Self::Stream) -> impl Future<Output = io::Result<()>> + Send;
}

/// Plain TCP.
#[derive(Debug, Clone, Copy)]
struct Plain;

impl Dial for Plain {
    type Stream = TcpStream;
    type Reader = OwnedReadHalf;
    type Writer = OwnedWriteHalf;

    async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        connect(addr).await
    }

    async fn send(s: &mut TcpStream, buf: &[u8]) -> io::Result<()> {
        s.write_all(buf).await
    }

    fn split(s: TcpStream) -> (OwnedReadHalf, OwnedWriteHalf) {
        s.into_split()
    }

    async fn close(s: TcpStream) -> io::Result<()> {
        drop(s);
        Ok(())
    }
}

/// TLS over TCP (tokio-rustls).
#[derive(Clone)]
struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

/// The protocol version and cipher suite of the first TLS connection, for
/// the result.
static TLS_PARAMS: OnceLock<String> = OnceLock::new();

impl Tls {
    /// A client that trusts the CAs in `ca`, expects `name`, and keeps no
    /// sessions (every handshake is a full one).
    fn new(ca: &std::path::Path, name: &str) -> Result<Self, String> {
        let roots = pem::load_roots(ca)?;
        let mut config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.resumption = Resumption::disabled();
        let name = ServerName::try_from(name.to_owned())
            .map_err(|e| format!("bad --tls-server-name {name:?}: {e}"))?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            name,
        })
    }
}

impl Dial for Tls {
    type Stream = TlsStream<TcpStream>;
    type Reader = ReadHalf<TlsStream<TcpStream>>;
    type Writer = WriteHalf<TlsStream<TcpStream>>;

    async fn connect(&self, addr: SocketAddr) -> io::Result<Self::Stream> {
        let tcp = connect(addr).await?;
        let s = self
            .connector
            .connect(self.name.clone(), tcp)
            .await
            .map_err(|e| ctx("TLS handshake", e))?;
        TLS_PARAMS.get_or_init(|| {
            let c = s.get_ref().1;
            let version = c.protocol_version().map(|v| format!("{v:?}"));
            let suite = c
                .negotiated_cipher_suite()
                .map(|cs| format!("{:?}", cs.suite()));
            format!(
                "{} {}",
                version.unwrap_or_default(),
                suite.unwrap_or_default()
            )
        });
        Ok(s)
    }

    async fn send(s: &mut Self::Stream, buf: &[u8]) -> io::Result<()> {
        // write_all may leave records inside rustls when the socket is
        // full; flush pushes them out before we wait for the echo.
        s.write_all(buf).await?;
        s.flush().await
    }

    fn split(s: Self::Stream) -> (Self::Reader, Self::Writer) {
        tokio::io::split(s)
    }

    async fn close(mut s: Self::Stream) -> io::Result<()> {
        // close_notify (and FIN), then the server's close_notify: a clean
        // TLS close on both sides, nothing left for the server to time out.
        s.shutdown().await.map_err(|e| ctx("close_notify", e))?;
        let mut b = [0u8; 64];
        match s.read(&mut b).await {
            Ok(0) => Ok(()),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "data after the echo, before the server's close_notify",
            )),
            Err(e) => Err(ctx("waiting for the server's close_notify", e)),
        }
    }
}

/// Writes `msg` and reads back exactly as many bytes into `buf`, verified.
async fn echo_once<D: Dial>(
    s: &mut D::Stream,
    conn: usize,
    off: u64,
    size: usize,
    buf: &mut [u8],
) -> io::Result<()> {
    let p = Pattern::get();
    D::send(s, p.window(off, size))
        .await
        .map_err(|e| ctx("write", e))?;
    s.read_exact(&mut buf[..size])
        .await
        .map_err(|e| ctx("read echo", e))?;
    p.verify(conn, off, &buf[..size])
}

/// One `rr` connection: `quota` round trips if given, else until the window
/// ends.
async fn rr_conn<D: Dial>(
    dial: D,
    addr: SocketAddr,
    conn: usize,
    size: usize,
    win: Window,
    quota: Option<u64>,
    think: Duration,
) -> io::Result<Stats> {
    let mut s = dial.connect(addr).await?;
    let mut st = Stats::new();
    let mut buf = vec![0u8; size];
    let mut off = conn as u64 * CONN_STRIDE;
    let mut done = 0u64;
    loop {
        let t0 = Instant::now();
        match quota {
            Some(q) if done >= q => break,
            None if t0 >= win.end => break,
            _ => {}
        }
        echo_once::<D>(&mut s, conn, off, size, &mut buf).await?;
        let t1 = Instant::now();
        off += size as u64;
        done += 1;
        st.verified += size as u64;
        if quota.is_some() || win.contains(t0, t1) {
            st.hist.record(nanos(t1 - t0).max(1)).ok();
            st.count += 1;
        }
        if !think.is_zero() {
            std::thread::sleep(think);
        }
    }
    Ok(st)
}

/// One `stream` connection: a writer and a reader until the window ends.
async fn stream_conn<D: Dial>(
    dial: D,
    addr: SocketAddr,
    conn: usize,
    size: usize,
    win: Window,
) -> io::Result<Stats> {
    let s = dial.connect(addr).await?;
    let (mut r, mut w) = D::split(s);
    let base = conn as u64 * CONN_STRIDE;
    let writer = tokio::spawn(async move {
        let p = Pattern::get();
        let mut off = base;
        while Instant::now() < win.end {
            match timeout_at(win.end, w.write_all(p.window(off, size))).await {
                Err(_) => break,
                Ok(r) => r.map_err(|e| ctx("write", e))?,
            }
            off += size as u64;
        }
        Ok::<_, io::Error>(w)
    });
    let p = Pattern::get();
    let mut st = Stats::new();
    let mut buf = vec![0u8; READ_BUF];
    let mut off = base;
    loop {
        let n = match timeout_at(win.end, r.read(&mut buf)).await {
            Err(_) => break,
            Ok(Ok(0)) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection {conn}: EOF while streaming"),
                ));
            }
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(ctx("read echo", e)),
        };
        let t = Instant::now();
        p.verify(conn, off, &buf[..n])?;
        off += n as u64;
        st.verified += n as u64;
        if win.contains(t, t) {
            st.count += n as u64;
        }
    }
    // Keep the write half alive until the reader is done (dropping it early
    // would half-close the connection).
    let _w = writer.await.map_err(io::Error::other)??;
    Ok(st)
}

/// One `connect` loop: connect, one echo, close, until the window ends.
async fn connect_loop<D: Dial>(
    dial: D,
    addr: SocketAddr,
    conn: usize,
    size: usize,
    win: Window,
) -> io::Result<Stats> {
    let mut st = Stats::new();
    let mut buf = vec![0u8; size];
    let mut off = conn as u64 * CONN_STRIDE;
    loop {
        let t0 = Instant::now();
        if t0 >= win.end {
            break;
        }
        let mut s = dial.connect(addr).await?;
        echo_once::<D>(&mut s, conn, off, size, &mut buf).await?;
        D::close(s).await?;
        let t1 = Instant::now();
        off += size as u64;
        st.verified += size as u64;
        if win.contains(t0, t1) {
            st.hist.record(nanos(t1 - t0).max(1)).ok();
            st.count += 1;
        }
    }
    Ok(st)
}

/// Opens `n` connections with one verified echo each and returns them.
async fn idle_open<D: Dial>(
    dial: D,
    addr: SocketAddr,
    first: usize,
    n: usize,
    size: usize,
) -> io::Result<Vec<D::Stream>> {
    let mut v = Vec::with_capacity(n);
    let mut buf = vec![0u8; size];
    for conn in first..first + n {
        let mut s = dial.connect(addr).await?;
        echo_once::<D>(&mut s, conn, conn as u64 * CONN_STRIDE, size, &mut buf).await?;
        v.push(s);
    }
    Ok(v)
}

/// utime + stime of a process, seconds.
fn proc_cpu(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which may contain spaces: field 3 is
    // the state, 14 utime, 15 stime.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let parse = |i: usize| -> io::Result<u64> {
        f.get(i)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad /proc/PID/stat"))
    };
    let ticks = parse(11)? + parse(12)?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100);
    #[allow(clippy::cast_precision_loss, reason = "tick counts are small")]
    Ok(ticks as f64 / hz as f64)
}

/// `VmRSS` of a process, KiB.
fn proc_rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS in /proc/PID/status"))
}

/// This process's CPU time (user + system), seconds.
fn self_cpu() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| {
            #[allow(clippy::cast_precision_loss, reason = "seconds fit")]
            let s = tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            s
        };
        t(u.user_time()) + t(u.system_time())
    })
}

/// Raises the soft open-files limit to the hard one (idle mode opens
/// thousands of sockets).
fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Server CPU seconds between two readings, if a pid was given.
struct CpuProbe {
    pid: Option<u32>,
    start: Option<f64>,
    self_start: f64,
}

impl CpuProbe {
    fn start(pid: Option<u32>) -> io::Result<Self> {
        Ok(Self {
            pid,
            start: pid.map(proc_cpu).transpose()?,
            self_start: self_cpu(),
        })
    }

    /// (server CPU seconds, load generator CPU seconds) since `start`.
    fn stop(&self) -> io::Result<(Option<f64>, f64)> {
        let server = match (self.pid, self.start) {
            (Some(pid), Some(s)) => Some(proc_cpu(pid)? - s),
            _ => None,
        };
        Ok((server, self_cpu() - self.self_start))
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn percentiles(out: &mut Map<String, Value>, h: &Histogram<u64>) {
    if h.is_empty() {
        return;
    }
    #[allow(clippy::cast_precision_loss, reason = "latencies fit")]
    let us = |ns: u64| (ns as f64 / 1e3 * 10.0).round() / 10.0;
    out.insert("lat_p50_us".into(), json!(us(h.value_at_quantile(0.50))));
    out.insert("lat_p99_us".into(), json!(us(h.value_at_quantile(0.99))));
    out.insert("lat_p999_us".into(), json!(us(h.value_at_quantile(0.999))));
    out.insert("lat_max_us".into(), json!(us(h.max())));
}

async fn run<D: Dial>(args: &Args, dial: D) -> io::Result<Map<String, Value>> {
    if args.size == 0 || args.size > MAX_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--size must be 1..={MAX_SIZE}"),
        ));
    }
    let conns = args.conns.max(1);
    let mut out = Map::new();
    out.insert(
        "mode".into(),
        json!(format!("{:?}", args.mode).to_lowercase()),
    );
    out.insert("addr".into(), json!(args.addr.to_string()));
    out.insert("conns".into(), json!(conns));
    out.insert("size".into(), json!(args.size));
    // Build the pattern before any timing.
    let _ = Pattern::get();

    if args.mode == Mode::Idle {
        return run_idle(args, dial, conns, out).await;
    }

    let now = Instant::now();
    let (win, quota) = match args.count {
        Some(total) if args.mode == Mode::Rr => {
            // Fixed work: no window, every round trip counts.
            let far = now + Duration::from_secs(86_400);
            out.insert("count".into(), json!(total));
            out.insert("think_us".into(), json!(args.think_us));
            (
                Window {
                    start: now,
                    end: far,
                },
                Some(total),
            )
        }
        _ => {
            let start = now + secs(args.warmup);
            (
                Window {
                    start,
                    end: start + secs(args.duration),
                },
                None,
            )
        }
    };

    let mut set = JoinSet::new();
    for conn in 0..conns {
        let (addr, size) = (args.addr, args.size);
        // Split the fixed count as evenly as possible.
        let q = quota.map(|t| t / conns as u64 + u64::from((conn as u64) < t % conns as u64));
        match args.mode {
            Mode::Rr => set.spawn(rr_conn(
                dial.clone(),
                addr,
                conn,
                size,
                win,
                q,
                Duration::from_micros(args.think_us),
            )),
            Mode::Stream => set.spawn(stream_conn(dial.clone(), addr, conn, size, win)),
            Mode::Connect => set.spawn(connect_loop(dial.clone(), addr, conn, size, win)),
            Mode::Idle => unreachable!("handled above"),
        };
    }

    // Server CPU over the window: read at its start and its end (for a fixed
    // count, around the whole run).
    let probe = if quota.is_some() {
        Some(CpuProbe::start(args.server_pid)?)
    } else {
        None
    };
    let mut cpu = None;
    let window_probe = if quota.is_none() {
        let pid = args.server_pid;
        let w = win;
        Some(tokio::spawn(async move {
            sleep_until(w.start).await;
            let p = CpuProbe::start(pid)?;
            sleep_until(w.end).await;
            p.stop()
        }))
    } else {
        None
    };

    let mut total = Stats::new();
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(st)) => total.merge(&st),
            Ok(Err(e)) => {
                if first_err.is_none() {
                    first_err = Some(e);
                    set.abort_all();
                }
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => return Err(io::Error::other(e)),
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let elapsed = if let Some(p) = &probe {
        cpu = Some(p.stop()?);
        now.elapsed().as_secs_f64()
    } else {
        args.duration
    };
    if let Some(h) = window_probe {
        cpu = Some(h.await.map_err(io::Error::other)??);
    }

    #[allow(clippy::cast_precision_loss, reason = "counts fit")]
    let count = total.count as f64;
    out.insert("duration_s".into(), json!(elapsed));
    out.insert("verified_bytes".into(), json!(total.verified));
    match args.mode {
        Mode::Rr => {
            out.insert("requests".into(), json!(total.count));
            out.insert("rps".into(), json!((count / elapsed).round()));
            percentiles(&mut out, &total.hist);
        }
        Mode::Connect => {
            out.insert("connections".into(), json!(total.count));
            out.insert("conns_per_s".into(), json!((count / elapsed).round()));
            percentiles(&mut out, &total.hist);
        }
        Mode::Stream => {
            out.insert("bytes".into(), json!(total.count));
            out.insert(
                "mb_s".into(),
                json!((count / elapsed / 1e6 * 10.0).round() / 10.0),
            );
        }
        Mode::Idle => unreachable!("handled above"),
    }
    if let Some((server, client)) = cpu {
        out.insert("client_cpu_s".into(), json!(client));
        if let Some(s) = server {
            out.insert("server_cpu_s".into(), json!(s));
            out.insert("server_cpu_util".into(), json!(s / elapsed));
            if total.count > 0 {
                match args.mode {
                    Mode::Rr | Mode::Connect => {
                        out.insert("server_cpu_us_per_op".into(), json!(s * 1e6 / count));
                    }
                    Mode::Stream => {
                        out.insert("mb_per_server_cpu_s".into(), json!(count / 1e6 / s));
                    }
                    Mode::Idle => {}
                }
            }
        }
    }
    Ok(out)
}

async fn run_idle<D: Dial>(
    args: &Args,
    dial: D,
    conns: usize,
    mut out: Map<String, Value>,
) -> io::Result<Map<String, Value>> {
    let rss0 = args.server_pid.map(proc_rss_kib).transpose()?;
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    let per = conns.div_ceil(IDLE_OPENERS);
    let mut first = 0;
    while first < conns {
        let n = per.min(conns - first);
        set.spawn(idle_open(dial.clone(), args.addr, first, n, args.size));
        first += n;
    }
    let mut held = Vec::with_capacity(conns);
    while let Some(r) = set.join_next().await {
        held.extend(r.map_err(io::Error::other)??);
    }
    let opened = t0.elapsed().as_secs_f64();
    tokio::time::sleep(secs(args.duration)).await;
    out.insert("open_s".into(), json!(opened));
    out.insert("held".into(), json!(held.len()));
    if let (Some(pid), Some(r0)) = (args.server_pid, rss0) {
        let r1 = proc_rss_kib(pid)?;
        out.insert("rss_before_kib".into(), json!(r0));
        out.insert("rss_after_kib".into(), json!(r1));
        #[allow(clippy::cast_precision_loss, reason = "sizes fit")]
        let per_conn = (r1 as f64 - r0 as f64) * 1024.0 / held.len() as f64;
        out.insert("rss_per_conn_bytes".into(), json!(per_conn.round()));
    }
    // Every connection must still be open and echoing after the hold.
    let mut buf = vec![0u8; args.size];
    for (i, s) in held.iter_mut().take(16).enumerate() {
        let off = i as u64 * CONN_STRIDE + args.size as u64;
        echo_once::<D>(s, i, off, args.size, &mut buf).await?;
    }
    out.insert(
        "verified_bytes".into(),
        json!((held.len() + held.len().min(16)) * args.size),
    );
    Ok(out)
}

fn main() -> ExitCode {
    let args = Args::parse();
    raise_nofile();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = match &args.tls_ca {
        None => rt.block_on(run(&args, Plain)),
        Some(ca) => match Tls::new(ca, &args.tls_server_name) {
            Ok(tls) => rt.block_on(run(&args, tls)),
            Err(e) => {
                eprintln!("loadgen: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    // Connections still open (a failed run) must not delay the exit.
    rt.shutdown_background();
    match res {
        Ok(mut out) => {
            out.insert("threads".into(), json!(threads));
            out.insert("tls".into(), json!(args.tls_ca.is_some()));
            if let Some(p) = TLS_PARAMS.get() {
                out.insert("tls_params".into(), json!(p));
            }
            for (k, v) in &args.tags {
                out.insert(k.clone(), json!(v));
            }
            println!("{}", Value::Object(out));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "loadgen: FAILED ({:?} mode against {}): {e}",
                args.mode, args.addr
            );
            ExitCode::FAILURE
        }
    }
}
