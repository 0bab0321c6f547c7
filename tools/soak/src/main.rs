//! `soak`: a load client for `echo_server`.
//!
//! ```text
//! soak --addr 127.0.0.1:PORT [--duration SECONDS] [--conns 200] [--seed N]
//! ```
//!
//! For `--duration` seconds it keeps `--conns` connections churning. Each one
//! connects, sends a random payload (1 B to 256 KiB by default) while reading
//! the echo, and checks every echoed byte against what it sent. Then it ends
//! in one of three ways:
//!
//! - **half-close** (60 %): `shutdown(Write)` after the payload, then reads
//!   until the server's FIN; the echo must be the whole payload (same length,
//!   same checksum);
//! - **reset** (20 %): sends a random prefix of the payload, then closes with
//!   `SO_LINGER` 0 (RST) while the echo is still flowing;
//! - **abrupt** (20 %): sends a random prefix, then closes without a
//!   half-close (unread echo makes the kernel send RST too).
//!
//! At the end it prints one JSON line (connections, bytes verified, errors
//! by kind) and exits 1 on any checksum mismatch (an echo that differs from,
//! is longer than, or, after the server's FIN, shorter than what was sent),
//! 2 if no connection completed, 0 otherwise. Other errors (resets by the
//! server, timeouts, connect failures) are counted, not fatal.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io,
    net::SocketAddr,
    process::ExitCode,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use clap::Parser;
use socket2::SockRef;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, tcp::ReadHalf},
};

/// Soak load client for `echo_server`.
#[derive(Debug, Parser)]
struct Args {
    /// The echo server's address.
    #[arg(long)]
    addr: SocketAddr,
    /// How long to open new connections, in seconds (connections in flight
    /// then finish, bounded by `--timeout`).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Connections kept open at once.
    #[arg(long, default_value_t = 200)]
    conns: usize,
    /// Smallest payload, in bytes.
    #[arg(long, default_value_t = 1)]
    min_payload: usize,
    /// Largest payload, in bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    max_payload: usize,
    /// Seed of the payloads and choices (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Per-connection deadline, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// `SplitMix64`: small, fast and good enough for payloads and choices.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        let span = u64::try_from(hi - lo).unwrap_or(u64::MAX).saturating_add(1);
        let off = if span == 0 {
            self.next_u64()
        } else {
            self.next_u64() % span
        };
        lo + usize::try_from(off).unwrap_or(0)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Prints a mismatch's details to stderr, the first 10 times.
fn note(msg: std::fmt::Arguments<'_>) {
    static NOTES: AtomicU32 = AtomicU32::new(0);
    if NOTES.fetch_add(1, Ordering::Relaxed) < 10 {
        eprintln!("soak: {msg}");
    }
}

/// FNV-1a, 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checksum(u64);

impl Checksum {
    const fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn of(data: &[u8]) -> Self {
        let mut c = Self::new();
        c.update(data);
        c
    }
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    HalfClose,
    Reset,
    Abrupt,
}

/// Why a connection failed: a kind for the report, and whether it is a
/// checksum mismatch (fatal for the run).
#[derive(Debug)]
struct Failure {
    kind: String,
    mismatch: bool,
}

impl Failure {
    fn io(stage: &str, e: &io::Error) -> Self {
        Self {
            kind: format!("{stage}_{:?}", e.kind()),
            mismatch: false,
        }
    }

    fn plain(kind: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            mismatch: false,
        }
    }

    fn mismatch(kind: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            mismatch: true,
        }
    }
}

/// The read side's progress: how much of the payload came back, verified.
#[derive(Debug)]
struct Echo<'a> {
    payload: &'a [u8],
    got: usize,
    sum: Checksum,
}

impl<'a> Echo<'a> {
    fn new(payload: &'a [u8]) -> Self {
        Self {
            payload,
            got: 0,
            sum: Checksum::new(),
        }
    }

    /// Reads and checks the echo until EOF (`Ok`) or a failure.
    /// Cancellation-safe: progress is kept in `self` between reads.
    async fn read_to_eof(&mut self, rd: &mut ReadHalf<'_>) -> Result<(), Failure> {
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = rd
                .read(&mut buf)
                .await
                .map_err(|e| Failure::io("read", &e))?;
            if n == 0 {
                return Ok(());
            }
            let chunk = &buf[..n];
            let Some(want) = self.payload.get(self.got..self.got + n) else {
                return Err(Failure::mismatch("mismatch_echo_longer_than_sent"));
            };
            self.sum.update(chunk);
            if chunk != want {
                let at = self.got + chunk.iter().zip(want).take_while(|(a, b)| a == b).count();
                note(format_args!("echo differs from the payload at byte {at}"));
                return Err(Failure::mismatch("mismatch_corrupt_echo"));
            }
            self.got += n;
        }
    }
}

#[derive(Debug, Default)]
struct Stats {
    started: u64,
    completed: u64,
    half_close: u64,
    reset: u64,
    abrupt: u64,
    bytes_sent: u64,
    bytes_verified: u64,
    mismatches: u64,
    errors: BTreeMap<String, u64>,
}

impl Stats {
    fn merge(&mut self, o: Self) {
        self.started += o.started;
        self.completed += o.completed;
        self.half_close += o.half_close;
        self.reset += o.reset;
        self.abrupt += o.abrupt;
        self.bytes_sent += o.bytes_sent;
        self.bytes_verified += o.bytes_verified;
        self.mismatches += o.mismatches;
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

fn len64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// One connection, start to end. Returns (bytes sent, bytes verified).
async fn scenario(
    addr: SocketAddr,
    payload: &[u8],
    mode: Mode,
    cut: usize,
) -> Result<(usize, usize), Failure> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| Failure::io("connect", &e))?;
    let mut echo = Echo::new(payload);
    match mode {
        Mode::HalfClose => {
            let (mut rd, mut wr) = stream.split();
            let write = async {
                wr.write_all(payload)
                    .await
                    .map_err(|e| Failure::io("write", &e))?;
                wr.shutdown().await.map_err(|e| Failure::io("shutdown", &e))
            };
            tokio::try_join!(write, echo.read_to_eof(&mut rd))?;
            // EOF (the server's FIN) came: the echo must be all of it.
            if echo.got != payload.len() || echo.sum != Checksum::of(payload) {
                note(format_args!(
                    "FIN after {} of {} echoed bytes",
                    echo.got,
                    payload.len()
                ));
                return Err(Failure::mismatch("mismatch_short_echo_before_fin"));
            }
            Ok((payload.len(), echo.got))
        }
        Mode::Reset | Mode::Abrupt => {
            {
                let (mut rd, mut wr) = stream.split();
                let write = wr.write_all(&payload[..cut]);
                tokio::select! {
                    w = write => w.map_err(|e| Failure::io("write", &e))?,
                    r = echo.read_to_eof(&mut rd) => {
                        r?;
                        return Err(Failure::plain("unexpected_eof"));
                    }
                }
            }
            if matches!(mode, Mode::Reset) {
                SockRef::from(&stream)
                    .set_linger(Some(Duration::ZERO))
                    .map_err(|e| Failure::io("set_linger", &e))?;
            }
            drop(stream);
            Ok((cut, echo.got))
        }
    }
}

async fn worker(args: Args2, mut rng: Rng, deadline: Instant) -> Stats {
    let mut stats = Stats::default();
    let mut payload = Vec::new();
    while Instant::now() < deadline {
        let len = rng.range(args.min_payload, args.max_payload);
        payload.resize(len, 0);
        rng.fill(&mut payload);
        let mode = match rng.range(0, 9) {
            0 | 1 => Mode::Reset,
            2 | 3 => Mode::Abrupt,
            _ => Mode::HalfClose,
        };
        let cut = rng.range(0, len);
        stats.started += 1;
        let run = scenario(args.addr, &payload, mode, cut);
        let result = match tokio::time::timeout(args.timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(Failure::plain("timeout")),
        };
        match result {
            Ok((sent, verified)) => {
                stats.completed += 1;
                stats.bytes_sent += len64(sent);
                stats.bytes_verified += len64(verified);
                match mode {
                    Mode::HalfClose => stats.half_close += 1,
                    Mode::Reset => stats.reset += 1,
                    Mode::Abrupt => stats.abrupt += 1,
                }
            }
            Err(f) => {
                if f.mismatch {
                    stats.mismatches += 1;
                }
                *stats.errors.entry(f.kind).or_default() += 1;
                // A refused or failed connect must not spin the loop.
                if stats.errors.values().sum::<u64>() % 64 == 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    stats
}

/// The parts of [`Args`] each worker needs.
#[derive(Debug, Clone, Copy)]
struct Args2 {
    addr: SocketAddr,
    min_payload: usize,
    max_payload: usize,
    timeout: Duration,
}

fn report(args: &Args, seed: u64, elapsed: Duration, s: &Stats) -> String {
    let mut errors = String::new();
    for (i, (k, v)) in s.errors.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(errors, "{sep}\"{k}\":{v}");
    }
    format!(
        concat!(
            "{{\"addr\":\"{}\",\"seed\":{},\"conns\":{},\"duration_s\":{},",
            "\"elapsed_s\":{:.1},\"connections_started\":{},",
            "\"connections_completed\":{},\"completed_by_mode\":{{\"half_close\":{},",
            "\"reset\":{},\"abrupt\":{}}},\"bytes_sent\":{},\"bytes_verified\":{},",
            "\"checksum_mismatches\":{},\"errors_total\":{},\"errors\":{{{}}}}}"
        ),
        args.addr,
        seed,
        args.conns,
        args.duration,
        elapsed.as_secs_f64(),
        s.started,
        s.completed,
        s.half_close,
        s.reset,
        s.abrupt,
        s.bytes_sent,
        s.bytes_verified,
        s.mismatches,
        s.errors.values().sum::<u64>(),
        errors
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.min_payload == 0 || args.min_payload > args.max_payload || args.conns == 0 {
        eprintln!("soak: need 1 <= --min-payload <= --max-payload and --conns >= 1");
        return ExitCode::from(2);
    }
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() ^ u64::from(d.subsec_nanos()))
    });
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("soak: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let a2 = Args2 {
        addr: args.addr,
        min_payload: args.min_payload,
        max_payload: args.max_payload,
        timeout: Duration::from_secs(args.timeout),
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.duration);
    let total = rt.block_on(async {
        let mut seeder = Rng(seed);
        let tasks: Vec<_> = (0..args.conns)
            .map(|_| tokio::spawn(worker(a2, Rng(seeder.next_u64()), deadline)))
            .collect();
        let mut total = Stats::default();
        for t in tasks {
            match t.await {
                Ok(s) => total.merge(s),
                Err(e) => {
                    eprintln!("soak: worker failed: {e}");
                    *total.errors.entry("worker_panic".to_owned()).or_default() += 1;
                }
            }
        }
        total
    });
    println!("{}", report(&args, seed, start.elapsed(), &total));
    if total.mismatches > 0 {
        eprintln!("soak: {} checksum mismatches", total.mismatches);
        ExitCode::FAILURE
    } else if total.completed == 0 {
        eprintln!("soak: no connection completed");
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
