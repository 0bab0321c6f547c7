//! Read flow control on real sockets (issue #5): while a connection is
//! paused with `pause_reading()`, nothing is delivered, the bytes stay in the
//! kernel, the peer's writes block (TCP backpressure reaches the sender), and
//! the process's memory does not grow; after `resume_reading()` every byte
//! arrives, in order.
//!
//! A binary of its own because RSS is per process.

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
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use asyncproto_core::{BaseProtocol, Bytes, Protocol, Transport};
use asyncproto_tokio::{ServerOptions, create_server};
use tokio::{io::AsyncWriteExt, sync::mpsc, time::timeout};

use crate::support::{payload, raw_connect, within};

/// What the peer tries to send.
const TOTAL: usize = 50_000_000;
/// How long the connection stays paused (issue #5: 2 s).
const PAUSED_FOR: Duration = Duration::from_secs(2);
/// The RSS growth allowed while paused (issue #5: 4 MB).
const BOUND: u64 = 4 << 20;

/// Pauses reading in `connection_made`; counts and checks what it gets.
struct Sink {
    made: mpsc::UnboundedSender<Transport>,
    eof: mpsc::UnboundedSender<()>,
    received: Arc<AtomicUsize>,
    expected: Bytes,
}

impl BaseProtocol for Sink {
    fn connection_made(&mut self, transport: Transport) {
        transport.pause_reading();
        let _ = self.made.send(transport);
    }
}

impl Protocol for Sink {
    fn data_received(&mut self, data: Bytes) {
        let at = self.received.fetch_add(data.len(), Ordering::SeqCst);
        for (i, b) in data.iter().enumerate() {
            assert_eq!(
                *b,
                self.expected[(at + i) % self.expected.len()],
                "byte {}",
                at + i
            );
        }
    }

    fn eof_received(&mut self) -> bool {
        let _ = self.eof.send(());
        false
    }
}

fn rss() -> u64 {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kb: u64 = line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("kB");
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_connection_blocks_the_peer_and_keeps_memory_flat() {
    within(60, async {
        let (made_tx, mut made) = mpsc::unbounded_channel();
        let (eof_tx, mut eof) = mpsc::unbounded_channel();
        let received = Arc::new(AtomicUsize::new(0));
        let chunk = payload(64 * 1024, 11);
        let factory = {
            let received = Arc::clone(&received);
            let chunk = chunk.clone();
            move || Sink {
                made: made_tx.clone(),
                eof: eof_tx.clone(),
                received: Arc::clone(&received),
                expected: chunk.clone(),
            }
        };
        let server = create_server(factory, "127.0.0.1:0", ServerOptions::new())
            .await
            .expect("create_server");
        let mut peer = raw_connect(server.local_addrs()[0], None).await;
        let transport = made.recv().await.expect("connection");
        assert!(!transport.is_reading());
        let before = rss();

        // Send for PAUSED_FOR, or until a write makes no progress for 1 s.
        let start = Instant::now();
        let mut sent = 0;
        let mut blocked = false;
        while sent < TOTAL && start.elapsed() < PAUSED_FOR {
            let off = sent % chunk.len();
            let end = chunk.len().min(off + TOTAL - sent);
            match timeout(Duration::from_secs(1), peer.write(&chunk[off..end])).await {
                Ok(Ok(n)) => sent += n,
                Ok(Err(e)) => panic!("peer write failed after {sent} bytes: {e}"),
                Err(_) => blocked = true,
            }
        }
        let grown = rss().saturating_sub(before);
        eprintln!(
            "peer sent {sent} bytes while paused; RSS +{} KiB",
            grown >> 10
        );
        assert!(
            blocked,
            "the peer's writes never blocked ({sent} bytes sent)"
        );
        assert!(
            sent < TOTAL,
            "the peer sent all {TOTAL} bytes while reading was paused"
        );
        assert_eq!(
            received.load(Ordering::SeqCst),
            0,
            "data_received while paused"
        );
        assert!(grown < BOUND, "RSS grew by {grown} bytes while paused");

        // Resume from outside any callback: every byte arrives, in order.
        transport.resume_reading();
        assert!(transport.is_reading());
        peer.shutdown().await.expect("half-close");
        eof.recv().await.expect("eof_received");
        assert_eq!(received.load(Ordering::SeqCst), sent);
        drop(peer);
        server.close();
        server.wait_closed().await;
    })
    .await;
}

#[tokio::test]
async fn pause_and_resume_are_idempotent_and_noops_once_closing() {
    within(10, async {
        let (made_tx, mut made) = mpsc::unbounded_channel();
        let (eof_tx, _eof) = mpsc::unbounded_channel();
        let factory = move || Sink {
            made: made_tx.clone(),
            eof: eof_tx.clone(),
            received: Arc::default(),
            expected: Bytes::from_static(b"x"),
        };
        let server = create_server(factory, "127.0.0.1:0", ServerOptions::new())
            .await
            .expect("create_server");
        let _peer = raw_connect(server.local_addrs()[0], None).await;
        let t = made.recv().await.expect("connection");
        t.pause_reading();
        t.pause_reading();
        assert!(!t.is_reading());
        t.resume_reading();
        t.resume_reading();
        assert!(t.is_reading());
        t.close();
        assert!(!t.is_reading());
        t.resume_reading();
        t.pause_reading();
        assert!(!t.is_reading(), "closing: neither call changes anything");
        server.close();
        server.wait_closed().await;
    })
    .await;
}
