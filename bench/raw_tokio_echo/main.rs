//! `raw_tokio_echo`: the hand-written, idiomatic Tokio echo server that the
//! benchmark suite compares asyncproto against (issue #4) — the limit to
//! reach.
//!
//! ```text
//! raw_tokio_echo --addr 127.0.0.1:8888 [--threads N] [--read-size BYTES]
//!                [--reply-writes N]
//! ```
//!
//! A `TcpListener` and one task per connection: `read` into a fixed buffer
//! (64 KiB, allocated when the connection is accepted), then `write_all` of
//! what was read, `TCP_NODELAY` on. With `--reply-writes N` (N > 1) the
//! socket's write side goes through a `tokio::io::BufWriter` and each read
//! is echoed with N `write_all` calls of about len/N bytes each, then one
//! `flush`: the idiomatic baseline for a reply built from many small writes
//! (`echo_server --reply-writes N`). The command-line contract is
//! `echo_server`'s: the first stdout line is `listening on HOST:PORT`, and
//! SIGINT or SIGTERM stops the process (exit 0).

use std::{net::SocketAddr, process::ExitCode};

use clap::Parser;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufWriter},
    net::{TcpListener, TcpStream},
    signal::unix::{SignalKind, signal},
};

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
}

/// Echoes until EOF or an error, then closes.
async fn echo(mut stream: TcpStream, read_size: usize, writes: usize) {
    if writes > 1 {
        return echo_buffered(stream, read_size, writes).await;
    }
    let _ = stream.set_nodelay(true);
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

/// `--reply-writes`: the echo of each read as `writes` small `write_all`s
/// into a `BufWriter` (piece `i` is bytes `i * n / writes .. (i + 1) * n /
/// writes`), sent by one `flush`.
async fn echo_buffered(stream: TcpStream, read_size: usize, writes: usize) {
    let _ = stream.set_nodelay(true);
    let mut stream = BufWriter::new(stream);
    let mut buf = vec![0u8; read_size];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        for i in 0..writes {
            if stream
                .write_all(&buf[i * n / writes..(i + 1) * n / writes])
                .await
                .is_err()
            {
                return;
            }
        }
        if stream.flush().await.is_err() {
            return;
        }
    }
}

async fn serve(args: Args) -> ExitCode {
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
                Ok((stream, _)) => {
                    tokio::spawn(echo(stream, read_size, writes));
                }
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
