//! Write flow control on live connections.
//!
//! The kernel's socket buffers absorb writes at their own pace, so these
//! tests never reason about what the kernel took between callbacks. They read
//! `get_write_buffer_size()` inside a callback, where nothing is sent, and
//! rely on the documented order after a callback: the pause edge is checked
//! before the next send, so the size a callback leaves is exactly the size
//! compared with the high-water mark.

use std::io;

use asyncproto_core::{
    Error as CoreError, Transport,
    testing::{Event, Recorder},
};
use asyncproto_tokio::{ConnectOptions, create_connection};
use socket2::SockRef;
use tokio::{io::AsyncWriteExt, sync::mpsc};

use crate::support::{on_both_runtimes, payload, raw_listener, read_to_end, tap};

use Event::{Data, Lost, Made, PauseWriting, ResumeWriting};

on_both_runtimes!(20;
    pause_only_strictly_over_high_and_resume_at_low,
    invalid_limits_are_rejected_and_change_nothing,
);

/// Shrinks our send buffer so the kernel holds little of what we write.
pub(crate) fn tiny_sndbuf(t: &Transport) {
    t.with_socket(|fd| SockRef::from(&fd).set_send_buffer_size(4096))
        .expect("socket open")
        .expect("SO_SNDBUF");
}

async fn pause_only_strictly_over_high_and_resume_at_low() {
    const FILLER: usize = 1 << 20;
    // The peer's receive buffer is tiny and it does not read, so most of
    // the filler stays in our write buffer.
    let (listener, addr) = raw_listener(Some(4096));
    let (tx, mut report) = mpsc::unbounded_channel::<(&'static str, usize)>();
    let mut marks = (0, 0);
    let rec = Recorder::default().on_event(move |e, t| match e {
        Made => {
            tiny_sndbuf(t);
            // No pause while filling.
            t.set_write_buffer_limits(Some(64 << 20), None)
                .expect("limits");
            t.write(payload(FILLER, 9)).expect("write");
        }
        Data(d) if d == "g" => {
            // Bring the buffer to exactly high.
            let size = t.get_write_buffer_size();
            marks = (size / 2, size + 100);
            t.set_write_buffer_limits(Some(marks.1), Some(marks.0))
                .expect("limits");
            t.write(vec![b'g'; 100]).expect("write");
            tx.send(("g", size)).expect("report");
            tx.send(("high", marks.1)).expect("report");
            tx.send(("low", marks.0)).expect("report");
        }
        Data(d) if d == "h" => {
            // One byte over high.
            let size = t.get_write_buffer_size();
            t.write(vec![b'h'; marks.1 + 1 - size]).expect("write");
            tx.send(("h", size)).expect("report");
        }
        PauseWriting => tx
            .send(("pause", t.get_write_buffer_size()))
            .expect("report"),
        ResumeWriting => tx
            .send(("resume", t.get_write_buffer_size()))
            .expect("report"),
        _ => {}
    });
    let (client, mut probe) = tap(rec);
    let (t, done) = create_connection(move || client, addr, ConnectOptions::new())
        .await
        .expect("connect");
    let (mut peer, _) = listener.accept().await.expect("accept");
    assert_eq!(probe.next().await, Made);

    peer.write_all(b"g").await.expect("write");
    assert_eq!(probe.next().await, Data("g".into()));
    let (_, s_g) = report.recv().await.expect("g");
    let (_, high) = report.recv().await.expect("high");
    let (_, low) = report.recv().await.expect("low");
    assert!(
        s_g > FILLER / 2,
        "the kernel took {} of {FILLER} bytes",
        FILLER - s_g
    );

    peer.write_all(b"h").await.expect("write");
    // A pause after "g" would have come right after it, before this.
    assert_eq!(
        probe.next().await,
        Data("h".into()),
        "buffer == high paused"
    );
    let (_, s_h) = report.recv().await.expect("h");
    assert!(s_h <= high);
    assert_eq!(
        probe.next().await,
        PauseWriting,
        "buffer == high + 1 did not pause"
    );
    assert_eq!(report.recv().await, Some(("pause", high + 1)));

    // The peer reads: the buffer drains and resumes at low or below.
    let total = FILLER + 100 + (high + 1 - s_h);
    let reader = tokio::spawn(async move { read_to_end(&mut peer).await.len() });
    assert_eq!(probe.next().await, ResumeWriting);
    let (what, at) = report.recv().await.expect("resume");
    assert_eq!(what, "resume");
    assert!(at <= low, "resumed at {at} > low {low}");
    t.close();
    assert_eq!(probe.next().await, Lost(None));
    assert_eq!(reader.await.expect("reader"), total);
    drop(done.await.expect("client protocol"));
}

async fn invalid_limits_are_rejected_and_change_nothing() {
    let (listener, addr) = raw_listener(None);
    let (t, done) = create_connection(Recorder::default, addr, ConnectOptions::new())
        .await
        .expect("connect");
    let (_peer, _) = listener.accept().await.expect("accept");
    assert_eq!(
        t.get_write_buffer_limits(),
        (16 * 1024, 64 * 1024),
        "asyncio's defaults"
    );

    let err = t
        .set_write_buffer_limits(Some(0), Some(1))
        .expect_err("high < low");
    assert!(
        matches!(err, CoreError::InvalidLimits { high: 0, low: 1 }),
        "{err:?}"
    );
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));

    t.set_write_buffer_limits(Some(0), None).expect("high 0");
    assert_eq!(t.get_write_buffer_limits(), (0, 0));
    t.set_write_buffer_limits(Some(1000), None)
        .expect("high only");
    assert_eq!(t.get_write_buffer_limits(), (250, 1000));
    t.set_write_buffer_limits(None, None).expect("defaults");
    assert_eq!(t.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
    t.close();
    assert_eq!(
        done.await.expect("client protocol").events(),
        [Made, Lost(None)]
    );
}
