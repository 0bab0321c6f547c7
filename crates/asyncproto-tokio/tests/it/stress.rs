//! The transport handle under contention: OS threads write numbered records
//! through clones of one transport while another thread closes or aborts
//! it, or the peer resets it.
//!
//! Each record says which thread wrote it and its sequence number, and
//! carries a check value, so the reader can tell a record lost, duplicated,
//! reordered or torn. Whatever happens, no thread may panic or hang, the
//! protocol gets exactly one `connection_lost` and nothing after it, and
//! each thread's records arrive in order with no gap. After `close()`,
//! every write that returned `Ok` before `close()` was called arrives.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    thread,
};

use asyncproto_core::{
    Bytes, Transport,
    testing::{Event, Recorder},
};
use asyncproto_tokio::{ConnectOptions, create_connection};
use tokio::{io::AsyncReadExt, sync::oneshot};

use crate::support::{linger_zero, raw_listener, within};

/// Writer threads.
const WRITERS: usize = 6;
/// The most records one thread writes (bounds the write buffer).
const RECORDS: u64 = 20_000;
/// Records a thread still writes after it saw `is_closing()`.
const AFTER_CLOSING: u64 = 100;
/// Bytes per record.
const RECORD: usize = 32;
/// The ending is triggered once the peer has read this much.
const START: usize = 128 * 1024;
/// Runs of each scenario: the interleavings differ from run to run.
const ROUNDS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// `close()` from another thread.
    Close,
    /// `abort()` from another thread.
    Abort,
    /// The peer resets the connection (`SO_LINGER` 0).
    PeerReset,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_racing_close_from_another_thread_lose_nothing_written_before() {
    within(30, async {
        for _ in 0..ROUNDS {
            writers_racing(Ending::Close).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_racing_abort_from_another_thread_end_cleanly() {
    within(30, async {
        for _ in 0..ROUNDS {
            writers_racing(Ending::Abort).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_racing_a_peer_reset_end_cleanly() {
    within(30, async {
        for _ in 0..ROUNDS {
            writers_racing(Ending::PeerReset).await;
        }
    })
    .await;
}

/// Record `seq` of thread `w`: `REC:`, `w` (u32), `seq` (u64), a check
/// value and its complement.
fn record(w: usize, seq: u64) -> Bytes {
    let w32 = u32::try_from(w).expect("few writers");
    let check = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(w32);
    let mut r = Vec::with_capacity(RECORD);
    r.extend_from_slice(b"REC:");
    r.extend_from_slice(&w32.to_le_bytes());
    r.extend_from_slice(&seq.to_le_bytes());
    r.extend_from_slice(&check.to_le_bytes());
    r.extend_from_slice(&(!check).to_le_bytes());
    r.into()
}

/// Checks every whole record in `got` and returns how many each thread
/// delivered. Each thread's records must be 0, 1, 2, … with no gap; a torn
/// record is allowed only at the very end, when `torn_tail`.
fn delivered(got: &[u8], torn_tail: bool) -> Vec<u64> {
    let whole = got.len() / RECORD * RECORD;
    assert!(
        torn_tail || whole == got.len(),
        "a torn record at the end ({} bytes)",
        got.len() - whole
    );
    let mut next = vec![0u64; WRITERS];
    for (i, r) in got[..whole].chunks(RECORD).enumerate() {
        assert_eq!(&r[..4], b"REC:", "record {i}: not a record boundary");
        let w = u32::from_le_bytes(r[4..8].try_into().expect("4 bytes"));
        let w = usize::try_from(w).expect("u32 fits");
        let seq = u64::from_le_bytes(r[8..16].try_into().expect("8 bytes"));
        assert!(w < WRITERS, "record {i}: writer {w}");
        assert_eq!(r, record(w, seq), "record {i}: corrupt");
        assert_eq!(
            seq, next[w],
            "record {i}: writer {w}'s records lost, duplicated or reordered"
        );
        next[w] += 1;
    }
    next
}

/// Writes records until the transport is closing (then a few more, which
/// must be dropped or sent in order), counting in `ok` the writes that
/// returned `Ok`.
fn writer(w: usize, t: &Transport, ok: &AtomicU64) {
    let mut extra = 0;
    for seq in 0..RECORDS {
        if t.is_closing() {
            if extra == AFTER_CLOSING {
                return;
            }
            extra += 1;
        }
        t.write(record(w, seq)).expect("write");
        ok.store(seq + 1, Ordering::SeqCst);
    }
}

async fn writers_racing(ending: Ending) {
    let (listener, addr) = raw_listener(None);
    let (t, done) = create_connection(Recorder::default, addr, ConnectOptions::new())
        .await
        .expect("connect");
    let (mut peer, _) = listener.accept().await.expect("accept");

    // The peer reads; once START bytes are in, it triggers the ending.
    let (started_tx, started_rx) = oneshot::channel();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let mut buf = vec![0; 64 * 1024];
        let mut started = Some(started_tx);
        loop {
            let n = peer.read(&mut buf).await.expect("peer read");
            if n == 0 {
                return got;
            }
            got.extend_from_slice(&buf[..n]);
            if got.len() >= START
                && let Some(tx) = started.take()
            {
                if ending == Ending::PeerReset {
                    linger_zero(&peer);
                    return got;
                }
                let _ = tx.send(());
            }
        }
    });

    let ok: Arc<[AtomicU64]> = (0..WRITERS).map(|_| AtomicU64::new(0)).collect();
    let mut threads: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (t, ok) = (t.clone(), Arc::clone(&ok));
            thread::spawn(move || {
                writer(w, &t, &ok[w]);
                Vec::new()
            })
        })
        .collect();
    // The ender: snapshots what returned Ok, then closes or aborts.
    threads.push({
        let (t, ok) = (t.clone(), Arc::clone(&ok));
        thread::spawn(move || {
            if ending == Ending::PeerReset {
                return Vec::new();
            }
            // The reader is gone only if it panicked; the join reports that.
            if started_rx.blocking_recv().is_err() {
                return Vec::new();
            }
            let before: Vec<u64> = ok.iter().map(|n| n.load(Ordering::SeqCst)).collect();
            match ending {
                Ending::Close => t.close(),
                _ => t.abort(),
            }
            before
        })
    });
    drop(t);

    // Joined off the runtime, so a hung thread trips `within`.
    let snapshot = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(|th| th.join().expect("no thread panics"))
            .next_back()
            .expect("the ender")
    })
    .await
    .expect("join");

    let events = done.await.expect("client protocol").events();
    let got = reader.await.expect("reader");
    let counts = delivered(&got, ending != Ending::Close);

    // Exactly one connection_lost, last; nothing read (the peer sends
    // nothing), and only flow control in between.
    assert_eq!(events.first(), Some(&Event::Made), "{events:?}");
    let lost: Vec<_> = events
        .iter()
        .filter(|e| !matches!(e, Event::PauseWriting | Event::ResumeWriting))
        .skip(1)
        .collect();
    match (ending, lost.as_slice()) {
        (Ending::Close | Ending::Abort, [Event::Lost(None)]) => {}
        (Ending::PeerReset, [Event::Lost(Some(kind))]) => assert!(
            matches!(
                kind,
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ),
            "{kind:?}"
        ),
        _ => panic!("{ending:?}: expected one connection_lost, last: {events:?}"),
    }
    assert!(matches!(events.last(), Some(Event::Lost(_))));

    if ending == Ending::Close {
        for (w, (&got, &before)) in counts.iter().zip(&snapshot).enumerate() {
            assert!(
                got >= before,
                "writer {w}: {before} writes returned Ok before close(), {got} arrived"
            );
        }
    }
}
