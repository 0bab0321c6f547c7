//! 10,000 short connections, one after the other, against one server: no
//! descriptor and no connection task is left behind.
//!
//! A binary of its own, so that no test running in parallel opens or closes
//! descriptors while they are counted.

#[path = "it/support.rs"]
#[allow(
    dead_code,
    unused_imports,
    unused_macros,
    reason = "this binary uses a few of the shared helpers"
)]
mod support;

use std::{
    fs,
    net::SocketAddr,
    time::{Duration, Instant},
};

use asyncproto_tokio::{Server, ServerOptions, create_server};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::{echo, linger_zero, payload, read_to_end, within};

const CONNECTIONS: usize = 10_000;

/// The process's open descriptors.
fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Waits until every connection task of `server` has ended. A connection
/// leaves the count when its task ends, just after `connection_lost`, so
/// this yields to the runtime until then (bounded by the caller's
/// `within`).
async fn no_connections_left(server: &Server) {
    while server.active_connections() > 0 {
        tokio::task::yield_now().await;
    }
}

/// One connection of kind `i % 4`.
async fn one(addr: SocketAddr, i: usize, garbage: &[u8]) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    match i % 4 {
        // Connect, send, close without reading (the echo may then be
        // answered with a RST by our kernel).
        0 => s.write_all(b"hello").await.expect("write"),
        // Connect, send, half-close, read the whole echo.
        1 => {
            let msg = format!("message {i}");
            s.write_all(msg.as_bytes()).await.expect("write");
            s.shutdown().await.expect("shutdown");
            assert_eq!(read_to_end(&mut s).await, msg.as_bytes(), "echo of {i}");
        }
        // Connect and reset at once.
        2 => linger_zero(&s),
        // Connect, send garbage, close.
        _ => s.write_all(garbage).await.expect("write"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_leave_no_descriptor_or_task_behind() {
    within(120, async {
        let server = create_server(echo, "127.0.0.1:0", ServerOptions::new())
            .await
            .expect("create_server");
        let addr = server.local_addrs()[0];
        let garbage = payload(1500, 7);
        // Warm up every path once, so what the runtime opens lazily is open
        // before counting.
        for i in 0..4 {
            one(addr, i, &garbage).await;
        }
        no_connections_left(&server).await;
        let before = open_fds();

        let started = Instant::now();
        for i in 0..CONNECTIONS {
            one(addr, i, &garbage).await;
        }
        let elapsed = started.elapsed();
        no_connections_left(&server).await;
        let drained = started.elapsed();
        let after = open_fds();
        eprintln!(
            "{CONNECTIONS} connections in {elapsed:?}, all ended after {drained:?}; \
             fds {before} -> {after}"
        );
        assert!(
            after.abs_diff(before) <= 3,
            "open descriptors: {before} before, {after} after"
        );

        // The server still serves.
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"still here").await.expect("write");
        let mut buf = [0; 10];
        s.read_exact(&mut buf).await.expect("echo");
        assert_eq!(&buf, b"still here");
        drop(s);
        server.close();
        server.wait_closed().await;
        assert_eq!(server.active_connections(), 0);
        // Catch a slow path early rather than at the 120 s timeout.
        assert!(drained < Duration::from_secs(60), "churn took {drained:?}");
    })
    .await;
}
