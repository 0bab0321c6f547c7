//! The spec's *Connecting Existing Sockets* example: a protocol waits for
//! data on one end of a `socketpair()`, prints it and closes.
//!
//! ```text
//! socketpair_demo
//! ```
//!
//! Prints, as the Python original:
//!
//! ```text
//! Received: abc
//! ```
//!
//! Exits 0 after `connection_lost`.

#[path = "common/mod.rs"]
#[allow(dead_code, reason = "each example uses a subset of the helpers")]
mod common;

use std::{io::Write, os::unix::net::UnixStream, process::ExitCode};

use asyncproto::{
    BaseProtocol, Bytes, ConnectOptions, Protocol, Transport, create_connection_with_sock,
};

// The page's MyProtocol; `on_con_lost` is the ProtocolHandle that
// create_connection_with_sock returns.
#[derive(Default)]
struct MyProtocol {
    transport: Option<Transport>,
}

impl BaseProtocol for MyProtocol {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }
}

impl Protocol for MyProtocol {
    fn data_received(&mut self, data: Bytes) {
        println!("Received: {}", String::from_utf8_lossy(&data));
        // We are done: close the transport; connection_lost() will be called
        // automatically.
        if let Some(t) = &self.transport {
            t.close();
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    common::init_tracing();
    // Create a pair of connected sockets.
    let (rsock, mut wsock) = match UnixStream::pair() {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("error: socketpair: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Register the socket to wait for data.
    let (transport, on_con_lost) = match create_connection_with_sock(
        MyProtocol::default,
        rsock,
        ConnectOptions::new(),
    )
    .await
    {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("error: create_connection_with_sock: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Simulate the reception of data from the network (the page's
    // `loop.call_soon(wsock.send, 'abc'.encode())`). Three bytes into an empty
    // socketpair never block.
    if let Err(e) = wsock.write_all(b"abc") {
        eprintln!("error: send: {e}");
        return ExitCode::FAILURE;
    }
    let result = on_con_lost.await;
    transport.close();
    drop(wsock);
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
