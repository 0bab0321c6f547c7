//! Bounded memory: a peer that sends without ever reading cannot grow the
//! process, because an echo that pauses reading on `pause_writing` passes
//! the backpressure on to the peer (EXAMPLES.md, `echo_server`).
//!
//! A binary of its own: RSS is per process, and in the shared `it` binary
//! tests running in parallel moved it by up to 15 MiB during the window.

#[path = "it/support.rs"]
#[allow(
    dead_code,
    unused_imports,
    unused_macros,
    reason = "this binary uses a few of the shared helpers"
)]
mod support;

use std::{fs, time::Duration};

use asyncproto_core::{BaseProtocol, Bytes, Protocol, Transport};
use asyncproto_tokio::{ServerOptions, create_server};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
    time::timeout,
};

use crate::support::{payload, raw_connect, within};

/// What the peer tries to send.
const TOTAL: usize = 50_000_000;
/// The RSS growth allowed (EXAMPLES.md's bound for `echo_server`). Without
/// backpressure the 50 MB would pile up in the write buffer.
const BOUND: u64 = 16 << 20;
/// A write that makes no progress for this long counts as blocked.
const STALLED: Duration = Duration::from_secs(1);

/// An echo that stops reading while its write buffer is over the high mark
/// (as `examples/echo_server.rs` does). It keeps nothing it received.
struct FlowEcho {
    transport: Option<Transport>,
    made: mpsc::UnboundedSender<Transport>,
}

impl BaseProtocol for FlowEcho {
    fn connection_made(&mut self, transport: Transport) {
        let _ = self.made.send(transport.clone());
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

impl Protocol for FlowEcho {
    fn data_received(&mut self, data: Bytes) {
        if let Some(t) = &self.transport {
            t.write(data).expect("echo write");
        }
    }
}

/// The process's resident set now and its peak, in bytes.
#[derive(Debug, Clone, Copy)]
struct Mem {
    rss: u64,
    hwm: u64,
}

impl Mem {
    fn now() -> Self {
        let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let field = |name: &str| -> u64 {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} in /proc/self/status"));
            let kb: u64 = line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .expect("a number of kB");
            kb * 1024
        };
        Self {
            rss: field("VmRSS:"),
            hwm: field("VmHWM:"),
        }
    }

    /// Resets the peak to the current RSS (Linux ≥ 4.0); false if refused.
    fn reset_peak() -> bool {
        fs::write("/proc/self/clear_refs", "5").is_ok()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_that_never_reads_is_blocked_and_memory_stays_bounded() {
    within(60, async {
        let (made_tx, mut made) = mpsc::unbounded_channel();
        let factory = move || FlowEcho {
            transport: None,
            made: made_tx.clone(),
        };
        let server = create_server(factory, "127.0.0.1:0", ServerOptions::new())
            .await
            .expect("create_server");
        let addr = server.local_addrs()[0];
        let chunk = payload(64 * 1024, 5);

        // Warm up: a full echo through the same path, so the allocator and
        // the runtime hold what they will hold anyway.
        let mut warm = raw_connect(addr, None).await;
        made.recv().await.expect("warm-up connection");
        warm.write_all(&chunk).await.expect("write");
        warm.shutdown().await.expect("shutdown");
        let mut back = Vec::new();
        warm.read_to_end(&mut back).await.expect("read");
        assert!(back == chunk[..], "warm-up echo");
        drop((warm, back));

        let mut peer = raw_connect(addr, None).await;
        let transport = made.recv().await.expect("connection");
        let peak_reset = Mem::reset_peak();
        let before = Mem::now();

        // Send until a write makes no progress for STALLED.
        let mut sent = 0;
        let blocked = loop {
            if sent == TOTAL {
                break false;
            }
            let off = sent % chunk.len();
            let end = chunk.len().min(off + TOTAL - sent);
            match timeout(STALLED, peer.write(&chunk[off..end])).await {
                Ok(Ok(n)) => sent += n,
                Ok(Err(e)) => panic!("peer write failed after {sent} bytes: {e}"),
                Err(_) => break true,
            }
        };
        let after = Mem::now();
        assert!(blocked && sent < TOTAL, "the peer sent all {sent} bytes");
        assert!(!transport.is_reading(), "the echo did not pause reading");

        let rss_growth = after.rss.saturating_sub(before.rss);
        // The peak during the test, if it went over the peak before it.
        let peak_growth = if peak_reset || after.hwm > before.hwm {
            after.hwm.saturating_sub(before.rss)
        } else {
            0
        };
        eprintln!(
            "peer blocked after {sent} bytes; RSS +{} KiB, peak +{} KiB (peak reset: {peak_reset})",
            rss_growth >> 10,
            peak_growth >> 10
        );
        assert!(rss_growth < BOUND, "VmRSS grew by {rss_growth} bytes");
        assert!(peak_growth < BOUND, "VmHWM grew by {peak_growth} bytes");

        // Once the peer reads, the echo resumes and returns every byte.
        peer.shutdown().await.expect("shutdown");
        let mut got = 0;
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = peer.read(&mut buf).await.expect("read echo");
            if n == 0 {
                break;
            }
            for (i, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b, chunk[(got + i) % chunk.len()], "echo byte {}", got + i);
            }
            got += n;
        }
        assert_eq!(got, sent, "echoed bytes");
        drop(peer);
        server.close();
        server.wait_closed().await;
    })
    .await;
}
