//! `alloc_count`: heap allocations per echoed message, asyncproto against
//! raw Tokio, in one process under one counting allocator (issue #4).
//!
//! ```text
//! alloc_count [--count 20000] [--warmup 2000] [--size 64]
//! ```
//!
//! For each server — asyncproto's echo protocol (the one in
//! `examples/echo_server.rs`) and the raw Tokio loop of
//! `bench/raw_tokio_echo` — it starts the server on its own single-worker
//! runtime on a loopback port, connects one blocking client socket from the
//! main thread, echoes `--warmup` messages, then counts the allocations made
//! while `--count` more messages of `--size` bytes are echoed (and verified).
//! The client thread is excluded from the count (its blocking `std::net`
//! calls do not allocate anyway), so the figures are the server's: runtime,
//! I/O driver, connection task and protocol.
//!
//! Also reported: the allocations made to accept a connection and echo its
//! first message (per-connection set-up). One JSON line per server on stdout.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    process::ExitCode,
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        mpsc,
    },
    time::Duration,
};

use asyncproto::{BaseProtocol, Bytes, Protocol, ServerOptions, Transport, create_server};
use clap::Parser;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Counts allocations (and bytes) made by every thread except the ones that
/// opted out with [`exclude_this_thread`].
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static EXCLUDED: Cell<bool> = const { Cell::new(false) };
}

fn count(size: usize) {
    if !EXCLUDED.with(Cell::get) {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(size as u64, Relaxed);
    }
}

fn exclude_this_thread() {
    EXCLUDED.with(|e| e.set(true));
}

fn snapshot() -> (u64, u64) {
    (ALLOCS.load(Relaxed), BYTES.load(Relaxed))
}

#[allow(unsafe_code, reason = "a GlobalAlloc impl is unsafe by definition")]
// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the counting touches only atomics and a const-initialized
// thread-local `Cell` (no allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: as above; `ptr` and `layout` come from this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Command line.
#[derive(Debug, Parser)]
struct Args {
    /// Messages counted, after the warm-up.
    #[arg(long, default_value_t = 20_000)]
    count: u64,
    /// Messages echoed before counting.
    #[arg(long, default_value_t = 2_000)]
    warmup: u64,
    /// Message size, bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Pause after each round trip, microseconds, so that the server goes
    /// idle (and would block on its next read) before every message; 0
    /// sends back to back.
    #[arg(long, default_value_t = 100)]
    think_us: u64,
}

/// `examples/echo_server.rs`'s protocol.
struct Echo {
    transport: Option<Transport>,
}

impl BaseProtocol for Echo {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }

    fn pause_writing(&mut self) {
        if let Some(t) = &self.transport {
            t.pause_reading();
        }
    }

    fn resume_writing(&mut self) {
        if let Some(t) = &self.transport {
            t.resume_reading();
        }
    }
}

impl Protocol for Echo {
    fn data_received(&mut self, data: Bytes) {
        if let Some(t) = &self.transport {
            let _ = t.write(data);
        }
    }
}

/// `bench/raw_tokio_echo`'s connection task.
async fn raw_echo(mut stream: tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Asyncproto,
    RawTokio,
}

/// Starts `server` on its own thread with a one-worker runtime (as
/// `--threads 1`); returns its address.
fn start(server: Server) -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            match server {
                Server::Asyncproto => {
                    let s = create_server(
                        || Echo { transport: None },
                        "127.0.0.1:0",
                        ServerOptions::new(),
                    )
                    .await
                    .expect("create_server");
                    tx.send(s.local_addrs()[0]).expect("send addr");
                    std::future::pending::<()>().await;
                }
                Server::RawTokio => {
                    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind");
                    tx.send(l.local_addr().expect("addr")).expect("send addr");
                    loop {
                        let (s, _) = l.accept().await.expect("accept");
                        tokio::spawn(raw_echo(s));
                    }
                }
            }
        });
    });
    rx.recv().expect("server address")
}

/// Echoes one message of `size` bytes whose content depends on `i`, and
/// checks the echo.
fn round_trip(s: &mut TcpStream, i: u64, msg: &mut [u8], back: &mut [u8], think: Duration) {
    let tag = i.to_le_bytes();
    for (j, b) in msg.iter_mut().enumerate() {
        *b = tag[j % 8] ^ j.to_le_bytes()[0];
    }
    s.write_all(msg).expect("write");
    s.read_exact(back).expect("read echo");
    assert_eq!(msg, back, "echo mismatch at message {i}");
    if !think.is_zero() {
        std::thread::sleep(think);
    }
}

fn measure(server: Server, args: &Args) -> serde_json::Value {
    let addr = start(server);
    let size = args.size.max(1);
    let mut msg = vec![0u8; size];
    let mut back = vec![0u8; size];
    let think = Duration::from_micros(args.think_us);
    // Let the server's runtime settle before the set-up count.
    std::thread::sleep(Duration::from_millis(50));
    let (a0, b0) = snapshot();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    round_trip(&mut s, 0, &mut msg, &mut back, think);
    let (a1, b1) = snapshot();
    for i in 1..=args.warmup {
        round_trip(&mut s, i, &mut msg, &mut back, think);
    }
    let (a2, b2) = snapshot();
    for i in 0..args.count {
        round_trip(&mut s, args.warmup + 1 + i, &mut msg, &mut back, think);
    }
    let (a3, b3) = snapshot();
    #[allow(clippy::cast_precision_loss, reason = "counts fit")]
    let per = |d: u64| d as f64 / args.count.max(1) as f64;
    json!({
        "server": match server { Server::Asyncproto => "asyncproto", Server::RawTokio => "raw_tokio" },
        "size": size,
        "think_us": args.think_us,
        "messages": args.count,
        "allocs": a3 - a2,
        "allocs_per_msg": per(a3 - a2),
        "alloc_bytes_per_msg": per(b3 - b2),
        "setup_allocs": a1 - a0,
        "setup_alloc_bytes": b1 - b0,
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    exclude_this_thread();
    let rows = [
        measure(Server::Asyncproto, &args),
        measure(Server::RawTokio, &args),
    ];
    for r in &rows {
        println!("{r}");
    }
    ExitCode::SUCCESS
}
