//! The spec's *TCP Echo Client* (`EchoClientProtocol`): sends a message,
//! prints what comes back, and exits after the server closes the connection.
//!
//! ```text
//! tcp_echo_client --addr 127.0.0.1:8888 --message 'Hello World!'
//! ```
//!
//! Prints, as the Python original:
//!
//! ```text
//! Data sent: 'Hello World!'
//! Data received: 'Hello World!'
//! The server closed the connection
//! ```
//!
//! Exits 0 after `connection_lost` (a close or a reset); non-zero if the
//! connection cannot be made.

#[path = "common/mod.rs"]
#[allow(dead_code, reason = "each example uses a subset of the helpers")]
mod common;

use std::process::ExitCode;

use asyncproto::{
    BaseProtocol, Bytes, ConnectOptions, Error, Protocol, Transport, create_connection,
};
use clap::Parser;

/// The spec's TCP echo client.
#[derive(Debug, Parser)]
struct Args {
    /// Server address, `HOST:PORT`.
    #[arg(long, default_value = "127.0.0.1:8888")]
    addr: String,
    /// The message to send.
    #[arg(long, default_value = "Hello World!")]
    message: String,
    /// Half-close (`write_eof`) after sending, so that a persistent echo
    /// such as `echo_server` answers and then closes. Not in the spec's
    /// example, whose server closes after one reply.
    #[arg(long)]
    write_eof: bool,
}

// The page's EchoClientProtocol; `on_con_lost` is the ProtocolHandle that
// create_connection returns.
struct EchoClientProtocol {
    message: String,
    write_eof: bool,
}

impl BaseProtocol for EchoClientProtocol {
    fn connection_made(&mut self, transport: Transport) {
        // Only fails after write_eof(), which this protocol never calls.
        let _ = transport.write(self.message.clone());
        println!("Data sent: {}", common::py_repr(&self.message));
        if self.write_eof {
            // TCP supports half-close; nothing to report otherwise.
            let _ = transport.write_eof();
        }
    }

    fn connection_lost(&mut self, _exc: Option<Error>) {
        println!("The server closed the connection");
    }
}

impl Protocol for EchoClientProtocol {
    fn data_received(&mut self, data: Bytes) {
        println!(
            "Data received: {}",
            common::py_repr(&String::from_utf8_lossy(&data))
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    common::init_tracing();
    let Args {
        addr,
        message,
        write_eof,
    } = Args::parse();
    let connect = create_connection(
        || EchoClientProtocol { message, write_eof },
        addr.as_str(),
        ConnectOptions::new(),
    );
    let (transport, on_con_lost) =
        match tokio::time::timeout(std::time::Duration::from_secs(4), connect).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => {
                eprintln!("error: cannot connect to {addr}: {e}");
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
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
