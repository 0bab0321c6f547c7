//! The spec's *TCP Echo Server* (`EchoServerClientProtocol`): for each
//! connection, writes back the first chunk received, then closes.
//!
//! ```text
//! tcp_echo_server --addr 127.0.0.1:8888
//! ```
//!
//! The first stdout line is `listening on HOST:PORT`; the page's `print`s go
//! to stderr. Exits 0 on SIGINT or SIGTERM.

#[path = "common/mod.rs"]
#[allow(dead_code, reason = "each example uses a subset of the helpers")]
mod common;

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use asyncproto::{BaseProtocol, Bytes, Protocol, ServerOptions, Transport, create_server};
use clap::Parser;

/// The spec's TCP echo server.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8888")]
    addr: SocketAddr,
}

// The page's EchoServerClientProtocol, line by line.
#[derive(Default)]
struct EchoServerClientProtocol {
    transport: Option<Transport>,
}

impl BaseProtocol for EchoServerClientProtocol {
    fn connection_made(&mut self, transport: Transport) {
        let peername = transport.peer_addr();
        eprintln!("Connection from {}", common::py_addr(peername));
        self.transport = Some(transport);
    }
}

impl Protocol for EchoServerClientProtocol {
    fn data_received(&mut self, data: Bytes) {
        let message = String::from_utf8_lossy(&data);
        eprintln!("Data received: {}", common::py_repr(&message));

        eprintln!("Send: {}", common::py_repr(&message));
        let Some(transport) = &self.transport else {
            return;
        };
        // Only fails after write_eof(), which this protocol never calls.
        let _ = transport.write(data.clone());

        eprintln!("Close the client socket");
        transport.close();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    common::init_tracing();
    let args = Args::parse();
    let mut signals = common::ShutdownSignals::install();
    let server = match create_server(
        EchoServerClientProtocol::default,
        args.addr,
        ServerOptions::new(),
    )
    .await
    {
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
    server.shutdown(Duration::from_secs(2)).await;
    ExitCode::SUCCESS
}
