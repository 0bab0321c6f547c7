//! A persistent echo server: writes back everything it receives, in order,
//! until the peer half-closes; then finishes writing and closes (FIN).
//!
//! ```text
//! echo_server --addr 127.0.0.1:8888 [--threads N] [--panic-on BYTES] [--buffered]
//!             [--reply-writes N]
//!             [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM] [--tls-handshake-timeout SECS]]
//! ```
//!
//! With `--buffered` the same echo runs as a `BufferedProtocol`: each
//! connection reads straight into one 64 KiB buffer of its own, allocated
//! once, and `buffer_updated` writes a copy of what arrived.
//!
//! With `--reply-writes N` each received chunk is echoed with N
//! `transport.write()` calls of about len/N bytes each (zero-copy slices of
//! the chunk, in order): a protocol that builds its reply from many small
//! writes, which the transport sends with one `writev` per callback (the
//! benchmarks' "16 writes" workloads).
//!
//! Flow control: when its write buffer goes over the high-water mark
//! (`pause_writing`) it stops reading (`pause_reading`) until the buffer
//! drains (`resume_writing` → `resume_reading`), so a peer that sends but
//! never reads cannot grow the server's memory. This is the program the
//! interop checks and benchmarks drive.
//!
//! With `--tls-cert` and `--tls-key` the same echo (any mode) is served over
//! TLS 1.2 or 1.3: `--tls-cert` holds the leaf certificate then the
//! intermediates, all sent to clients; `--tls-key` is its PKCS#8 key. The
//! client's `close_notify` is its EOF: the server finishes the echo, answers
//! with its own `close_notify`, and closes. `--tls-client-ca` requires client
//! certificates signed by a CA in that file (mutual TLS). A file that cannot
//! be read or used ends the program at start, non-zero, with the reason on
//! stderr.
//!
//! The first stdout line is `listening on HOST:PORT`; logs go to stderr. On
//! SIGINT or SIGTERM it stops accepting, closes every connection (each
//! flushes), aborts what is left after 2 s, and exits 0.

#[path = "common/mod.rs"]
#[allow(dead_code, reason = "each example uses a subset of the helpers")]
mod common;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use asyncproto::{
    BaseProtocol, Buffered, BufferedProtocol, Bytes, Protocol, ServerOptions, TlsServerOptions,
    Transport, create_server,
};
use clap::Parser;

/// Persistent echo server.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8888")]
    addr: SocketAddr,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Test hook: panic in `data_received` (`buffer_updated` with
    /// `--buffered`) when a chunk starts with these bytes (panic isolation:
    /// only that connection ends).
    #[arg(long)]
    panic_on: Option<String>,
    /// Serve through a `BufferedProtocol` reading into a per-connection
    /// buffer instead of a `Protocol` receiving `Bytes`.
    #[arg(long)]
    buffered: bool,
    /// Serve TLS with this certificate chain (PEM: the leaf first, then the
    /// intermediates; the whole chain is sent). Needs `--tls-key`.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM, PKCS#8: `BEGIN PRIVATE KEY`).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// With TLS, require a client certificate signed by a CA in this PEM
    /// file (mutual TLS).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// With TLS, how long a client's handshake may take, in seconds
    /// (default 60, as asyncio's `ssl_handshake_timeout`).
    #[arg(long, value_name = "SECS", requires = "tls_cert", value_parser = parse_secs)]
    tls_handshake_timeout: Option<Duration>,
    /// Echo each received chunk with this many `write()` calls of about
    /// len/N bytes each.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    reply_writes: u16,
}

/// A positive, finite number of seconds.
fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("{s} is not a positive number of seconds")),
    }
}

/// The server options: plain TCP, or TLS from the `--tls-*` files.
fn server_options(args: &Args) -> Result<ServerOptions, String> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(ServerOptions::new());
    };
    let config = common::tls::server_config(cert, key, args.tls_client_ca.as_deref())?;
    let mut tls = TlsServerOptions::new(config);
    if let Some(timeout) = args.tls_handshake_timeout {
        tls = tls.handshake_timeout(timeout);
    }
    Ok(ServerOptions::new().tls(tls))
}

/// The receive buffer of each `--buffered` connection.
const BUFFER_SIZE: usize = 64 * 1024;

struct Echo {
    transport: Option<Transport>,
    panic_on: Option<Arc<[u8]>>,
    reply_writes: usize,
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
        if let Some(p) = &self.panic_on {
            assert!(!data.starts_with(p), "--panic-on matched");
        }
        if let Some(t) = &self.transport {
            reply(t, data, self.reply_writes);
        }
    }

    // Default eof_received() returns false: close() flushes what is queued,
    // then sends FIN (over TLS: close_notify, then FIN).
}

/// The same echo as a `BufferedProtocol` (`--buffered`): the transport reads
/// into `buf`, and `buffer_updated` queues a copy of the new bytes, so the
/// buffer can be lent again at once.
struct BufferedEcho {
    transport: Option<Transport>,
    buf: Box<[u8]>,
    panic_on: Option<Arc<[u8]>>,
    reply_writes: usize,
}

impl BufferedEcho {
    fn new(panic_on: Option<Arc<[u8]>>, reply_writes: usize) -> Self {
        Self {
            transport: None,
            buf: vec![0; BUFFER_SIZE].into_boxed_slice(),
            panic_on,
            reply_writes,
        }
    }
}

impl BaseProtocol for BufferedEcho {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }

    // The same flow control as Echo: stop reading while the peer is not
    // taking the echo.
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

impl BufferedProtocol for BufferedEcho {
    fn get_buffer(&mut self, _sizehint: Option<usize>) -> &mut [u8] {
        &mut self.buf
    }

    fn buffer_updated(&mut self, nbytes: usize) {
        let data = &self.buf[..nbytes];
        if let Some(p) = &self.panic_on {
            assert!(!data.starts_with(p), "--panic-on matched");
        }
        if let Some(t) = &self.transport {
            reply(t, Bytes::copy_from_slice(data), self.reply_writes);
        }
    }

    // Default eof_received() returns false, as for Echo.
}

/// Echoes `data` with `writes` calls to `write()`, piece `i` being bytes
/// `i * len / writes .. (i + 1) * len / writes` (slices of `data`, no copy;
/// empty pieces are no-ops).
fn reply(t: &Transport, data: Bytes, writes: usize) {
    // write() only fails after write_eof(), which these protocols never call.
    if writes <= 1 {
        let _ = t.write(data);
        return;
    }
    let len = data.len();
    for i in 0..writes {
        let _ = t.write(data.slice(i * len / writes..(i + 1) * len / writes));
    }
}

fn main() -> ExitCode {
    common::init_tracing();
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(serve(args))
}

async fn serve(args: Args) -> ExitCode {
    let options = match server_options(&args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let panic_on: Option<Arc<[u8]>> = args.panic_on.map(|s| Arc::from(s.into_bytes()));
    let reply_writes = usize::from(args.reply_writes);
    let mut signals = common::ShutdownSignals::install();
    let created = if args.buffered {
        let factory = move || Buffered(BufferedEcho::new(panic_on.clone(), reply_writes));
        create_server(factory, args.addr, options).await
    } else {
        let factory = move || Echo {
            transport: None,
            panic_on: panic_on.clone(),
            reply_writes,
        };
        create_server(factory, args.addr, options).await
    };
    let server = match created {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    for addr in server.local_addrs() {
        common::announce(addr);
    }
    signals.recv().await;
    tracing::info!(connections = server.active_connections(), "shutting down");
    server.shutdown(Duration::from_secs(2)).await;
    ExitCode::SUCCESS
}
