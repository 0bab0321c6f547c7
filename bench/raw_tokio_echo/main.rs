//! `raw_tokio_echo`: the hand-written, idiomatic Tokio echo server that the
//! benchmark suite compares asyncproto against (issue #4) — the limit to
//! reach.
//!
//! ```text
//! raw_tokio_echo --addr 127.0.0.1:8888 [--threads N] [--read-size BYTES]
//!                [--reply-writes N] [--tls-cert PEM --tls-key PEM]
//! ```
//!
//! A `TcpListener` and one task per connection: `read` into a fixed buffer
//! (64 KiB, allocated when the connection is accepted), then `write_all` of
//! what was read, `TCP_NODELAY` on. With `--reply-writes N` (N > 1) the
//! socket's write side goes through a `tokio::io::BufWriter` and each read
//! is echoed with N `write_all` calls of about len/N bytes each, then one
//! `flush`: the idiomatic baseline for a reply built from many small writes
//! (`echo_server --reply-writes N`).
//!
//! With `--tls-cert` (the chain, leaf first) and `--tls-key` (its key) the
//! same loop runs over TLS, the TLS limit to reach: tokio-rustls'
//! `TlsAcceptor` with the `rustls` server configuration `echo_server
//! --tls-*` builds (`ServerConfig::builder()`, no client authentication,
//! `rustls`' defaults otherwise), the handshake inside the connection's
//! task, then `read` / `write_all` on the `TlsStream` (rustls' plaintext
//! buffers; `write_all` returns once the records are handed to the socket or
//! buffered in rustls, so each echo is followed by a `flush`). On the
//! client's `close_notify` it answers with its own (`shutdown`), as
//! `echo_server` does. The command-line contract is
//! `echo_server`'s: the first stdout line is `listening on HOST:PORT`, and
//! SIGINT or SIGTERM stops the process (exit 0).

#[path = "../loadgen/src/pem.rs"]
mod pem;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use clap::Parser;
use rustls::ServerConfig;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter},
    net::{TcpListener, TcpStream},
    signal::unix::{SignalKind, signal},
};
use tokio_rustls::TlsAcceptor;

/// Raw Tokio echo server.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8888")]
    addr: SocketAddr,
    /// Tokio worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Size of each connection's read buffer, bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    read_size: usize,
    /// Echo each read with this many `write_all` calls into a `BufWriter`
    /// (about len/N bytes each), then one `flush`.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    reply_writes: u16,
    /// Serve TLS with this certificate chain (PEM, the leaf first).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of `--tls-cert` (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// The server configuration of `echo_server --tls-cert … --tls-key …`.
fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> Result<Arc<ServerConfig>, String> {
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(pem::load_certs(cert)?, pem::load_key(key)?)
        .map_err(|e| {
            format!(
                "cannot use certificate {} with key {}: {e}",
                cert.display(),
                key.display()
            )
        })?;
    Ok(Arc::new(config))
}

/// Echoes until EOF or an error, then closes.
async fn echo(stream: TcpStream, read_size: usize, writes: usize) {
    let _ = stream.set_nodelay(true);
    if writes > 1 {
        echo_buffered(stream, read_size, writes).await;
    } else {
        echo_loop(stream, read_size).await;
    }
}

/// The echo over TLS: handshake, the same loops as [`echo`] on the
/// `TlsStream` (each echo flushed), then `close_notify` after the client's.
async fn echo_tls(stream: TcpStream, acceptor: TlsAcceptor, read_size: usize, writes: usize) {
    let _ = stream.set_nodelay(true);
    let Ok(mut tls) = acceptor.accept(stream).await else {
        return;
    };
    let eof = if writes > 1 {
        echo_buffered(&mut tls, read_size, writes).await
    } else {
        echo_loop_flushed(&mut tls, read_size).await
    };
    if eof {
        let _ = tls.shutdown().await;
    }
}

/// `read` into a fixed buffer, `write_all` what was read; until EOF or an
/// error.
async fn echo_loop(mut stream: TcpStream, read_size: usize) {
    let mut buf = vec![0u8; read_size];
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

/// [`echo_loop`] for a stream that buffers writes (TLS): `write_all`, then
/// `flush`. True at EOF, false after an error.
async fn echo_loop_flushed<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    read_size: usize,
) -> bool {
    let mut buf = vec![0u8; read_size];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => return true,
            Err(_) => return false,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() || stream.flush().await.is_err() {
            return false;
        }
    }
}

/// `--reply-writes`: the echo of each read as `writes` small `write_all`s
/// into a `BufWriter` (piece `i` is bytes `i * n / writes .. (i + 1) * n /
/// writes`), sent by one `flush`. True at EOF, false after an error.
async fn echo_buffered<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    read_size: usize,
    writes: usize,
) -> bool {
    let mut stream = BufWriter::new(stream);
    let mut buf = vec![0u8; read_size];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) => return true,
            Err(_) => return false,
            Ok(n) => n,
        };
        for i in 0..writes {
            if stream
                .write_all(&buf[i * n / writes..(i + 1) * n / writes])
                .await
                .is_err()
            {
                return false;
            }
        }
        if stream.flush().await.is_err() {
            return false;
        }
    }
}

async fn serve(args: Args) -> ExitCode {
    let acceptor = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match tls_config(cert, key) {
            Ok(config) => Some(TlsAcceptor::from(config)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("error: cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    let listener = match TcpListener::bind(args.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.addr);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(a) => println!("listening on {a}"),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let read_size = args.read_size.max(1);
    let writes = usize::from(args.reply_writes);
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => match &acceptor {
                    None => {
                        tokio::spawn(echo(stream, read_size, writes));
                    }
                    Some(a) => {
                        tokio::spawn(echo_tls(stream, a.clone(), read_size, writes));
                    }
                },
                // EMFILE and the like: keep serving the connections we have.
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    match rt.enable_all().build() {
        Ok(rt) => {
            let code = rt.block_on(serve(args));
            rt.shutdown_background();
            code
        }
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
