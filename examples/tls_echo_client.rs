//! The spec's *TCP Echo Client* (`EchoClientProtocol`) over TLS: sends a
//! message, prints what comes back, and exits after `connection_lost`.
//!
//! ```text
//! tls_echo_client --addr 127.0.0.1:8888 --message 'Hello World!' --ca ca.pem
//!                 [--server-name NAME] [--cert client.pem --key client.key]
//! ```
//!
//! Prints the same lines as `tcp_echo_client`:
//!
//! ```text
//! Data sent: 'Hello World!'
//! Data received: 'Hello World!'
//! The server closed the connection
//! ```
//!
//! The server's certificate is verified against the CAs in `--ca` and the
//! name `--server-name` (default: the IP address connected to); there is no
//! switch to turn verification off. `--cert` and `--key` present a client
//! certificate (mutual TLS).
//!
//! TLS has no half-close, so instead of `tcp_echo_client --write-eof` this
//! client closes (sends `close_notify`) once the whole echo of the message
//! has arrived, which ends a persistent echo such as `echo_server`; a server
//! that closes first (the spec's echo server) ends it too.
//!
//! Exits 0 after a clean `connection_lost`. Exits non-zero, with the error
//! on stderr, if the connection or the handshake fails, or if the connection
//! is lost with an error (a TLS alert, a reset, or a truncation: TCP closed
//! without `close_notify`).

#[path = "common/mod.rs"]
#[allow(dead_code, reason = "each example uses a subset of the helpers")]
mod common;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use asyncproto::{
    BaseProtocol, Bytes, ConnectOptions, Error, Protocol, TlsClientOptions, Transport,
    create_connection, rustls::pki_types::ServerName,
};
use clap::Parser;

/// The spec's TCP echo client, over TLS.
#[derive(Debug, Parser)]
struct Args {
    /// Server address, `HOST:PORT`.
    #[arg(long, default_value = "127.0.0.1:8888")]
    addr: String,
    /// The message to send.
    #[arg(long, default_value = "Hello World!")]
    message: String,
    /// The CA certificates to trust (PEM).
    #[arg(long, value_name = "PEM")]
    ca: PathBuf,
    /// The name to verify the server's certificate against, and to send as
    /// SNI (a DNS name or an IP address). Default: the IP address connected
    /// to.
    #[arg(long, value_name = "NAME", value_parser = parse_server_name)]
    server_name: Option<ServerName<'static>>,
    /// A client certificate chain to present (PEM, leaf first). Needs
    /// `--key`.
    #[arg(long, value_name = "PEM", requires = "key")]
    cert: Option<PathBuf>,
    /// The private key of `--cert` (PEM, PKCS#8).
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<PathBuf>,
}

fn parse_server_name(s: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(s)
        .map(|n| n.to_owned())
        .map_err(|e| format!("{e}"))
}

/// How long connecting and the handshake may take together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

// The page's EchoClientProtocol, plus the close once the echo is complete.
struct EchoClientProtocol {
    message: String,
    transport: Option<Transport>,
    /// Bytes of the echo still to come.
    awaited: usize,
    /// What `connection_lost` reported, for the exit status.
    lost_with: Option<String>,
}

impl BaseProtocol for EchoClientProtocol {
    fn connection_made(&mut self, transport: Transport) {
        // Only fails after write_eof(), which this protocol never calls.
        let _ = transport.write(self.message.clone());
        println!("Data sent: {}", common::py_repr(&self.message));
        self.transport = Some(transport);
    }

    fn connection_lost(&mut self, exc: Option<Error>) {
        println!("The server closed the connection");
        self.lost_with = exc.map(|e| error_chain(&e));
    }
}

impl Protocol for EchoClientProtocol {
    fn data_received(&mut self, data: Bytes) {
        println!(
            "Data received: {}",
            common::py_repr(&String::from_utf8_lossy(&data))
        );
        self.awaited = self.awaited.saturating_sub(data.len());
        if self.awaited == 0
            && let Some(t) = &self.transport
        {
            // The whole echo is here: close_notify, then wait for the
            // server's (TLS has no half-close to ask for it with).
            t.close();
        }
    }

    // Default eof_received() returns false: the server's close_notify
    // closes this side too.
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    common::init_tracing();
    let args = Args::parse();
    let identity = args.cert.as_deref().zip(args.key.as_deref());
    let config = match common::tls::client_config(&args.ca, identity) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut tls = TlsClientOptions::new(config).handshake_timeout(CONNECT_TIMEOUT);
    if let Some(name) = args.server_name {
        tls = tls.server_name(name);
    }
    let message = args.message;
    let awaited = message.len();
    let connect = create_connection(
        move || EchoClientProtocol {
            message,
            transport: None,
            awaited,
            lost_with: None,
        },
        args.addr.as_str(),
        ConnectOptions::new().tls(tls),
    );
    let addr = &args.addr;
    let (transport, on_con_lost) = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            eprintln!("error: cannot connect to {addr}: {}", error_chain(&e));
            return ExitCode::FAILURE;
        }
        Err(_) => {
            eprintln!("error: connecting to {addr} timed out");
            return ExitCode::FAILURE;
        }
    };
    // Wait until the protocol signals that the connection is lost, then
    // close the transport (as the page's `finally: transport.close()`).
    let result = on_con_lost.await;
    transport.close();
    match result {
        Ok(EchoClientProtocol {
            lost_with: None, ..
        }) => ExitCode::SUCCESS,
        Ok(EchoClientProtocol {
            lost_with: Some(e), ..
        }) => {
            eprintln!("error: connection lost: {e}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// `e` and its sources, `outer: inner: …` (a rustls alert or certificate
/// error is a source, not part of the outer message).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut last = out.clone();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        // io::Error shows its inner error's message and skips it as source.
        if text != last {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
        source = s.source();
    }
    out
}
