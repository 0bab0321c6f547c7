//! Write flow control on TLS transports: the memory bound against a peer
//! that does not read, and `set_write_buffer_limits`.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use asyncproto_core::{
    Error as CoreError,
    testing::{
        Event::{Data, Eof, Lost, Made, PauseWriting, ResumeWriting},
        Recorder,
    },
};
use asyncproto_testkit::tls::TestPki;
use asyncproto_tokio::create_server;
use socket2::SockRef;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::oneshot,
};
use tokio_rustls::TlsConnector;

use crate::{
    peers::{self, localhost, server_options},
    support::{checksum, payload, raw_connect, tapped_factory, within},
};

const HIGH: usize = 512 * 1024;
const LOW: usize = 128 * 1024;
const CHUNK: usize = 64 * 1024;

/// A peer that stops reading cannot make a TLS transport hold more than the
/// high mark plus one write: the protocol is paused as soon as the buffer
/// (plaintext still inside `rustls` included) goes over 512 KiB, is not
/// resumed while the peer reads nothing, and is resumed once the peer has
/// drained it to 128 KiB; every byte arrives once, in order.
#[tokio::test]
async fn non_reading_tls_peer_cannot_grow_the_write_buffer() {
    within(20, async {
        let pki = TestPki::new();
        let data = payload(HIGH + CHUNK, 11);
        let sent = data.clone();
        let at_pause = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&at_pause);
        let (factory, mut accepted) = tapped_factory(move || {
            let sent = sent.clone();
            let seen = Arc::clone(&seen);
            Recorder::default().on_event(move |e, t| {
                if *e == Made {
                    // Small kernel buffers: the backlog stays in the transport.
                    t.with_socket(|fd| {
                        SockRef::from(&fd)
                            .set_send_buffer_size(16 * 1024)
                            .expect("SO_SNDBUF");
                    })
                    .expect("socket");
                    let mut off = 0;
                    while t.get_write_buffer_size() <= HIGH {
                        t.write(sent.slice(off..off + CHUNK)).expect("write");
                        off += CHUNK;
                    }
                    seen.store(t.get_write_buffer_size(), Ordering::SeqCst);
                }
            })
        });
        let server = create_server(factory, "127.0.0.1:0", server_options(&pki))
            .await
            .expect("server");
        let tcp = raw_connect(server.local_addrs()[0], Some(16 * 1024)).await;
        let mut peer = TlsConnector::from(pki.client_config())
            .connect(localhost(), tcp)
            .await
            .expect("handshake");
        let mut sp = accepted.next().await;
        assert_eq!(sp.next().await, Made);
        assert_eq!(sp.next().await, PauseWriting);
        // Nothing drained while `connection_made` ran: exactly 9 chunks.
        assert_eq!(at_pause.load(Ordering::SeqCst), HIGH + CHUNK);
        let t = sp.transport().clone();
        assert!(t.get_write_buffer_size() <= HIGH + CHUNK);
        assert!(
            sp.try_next().is_none(),
            "no resume while the peer reads nothing"
        );

        let read = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&read);
        let (go, start) = oneshot::channel::<()>();
        let reader = tokio::spawn(async move {
            start.await.expect("go");
            let mut got = Vec::new();
            let mut buf = vec![0; 16 * 1024];
            while got.len() < HIGH + CHUNK {
                let n = peer.read(&mut buf).await.expect("read");
                assert!(n > 0, "EOF too early");
                got.extend_from_slice(&buf[..n]);
                counter.store(got.len(), Ordering::SeqCst);
            }
            (peer, got)
        });
        go.send(()).expect("reader");
        assert_eq!(sp.next().await, ResumeWriting);
        assert!(
            read.load(Ordering::SeqCst) >= 256 * 1024,
            "resumed only after the peer drained it: {} read",
            read.load(Ordering::SeqCst)
        );
        assert!(t.get_write_buffer_size() <= LOW);
        let (mut peer, got) = reader.await.expect("reader");
        assert_eq!(got.len(), data.len());
        assert_eq!(checksum(&got), checksum(&data));
        peer.shutdown().await.expect("close_notify");
        assert_eq!(sp.until_lost().await, [Eof, Lost(None)]);
        server.close();
        server.wait_closed().await;
    })
    .await;
}

/// `set_write_buffer_limits` on a TLS transport: the defaults are asyncio's
/// TLS marks as `(low, high)`; `high < low` is rejected; with `high = 100`
/// a buffer of exactly 100 does not pause and 101 does; `high = 0` pauses on
/// any non-empty buffer; each pause is resumed once drained.
#[tokio::test]
async fn set_write_buffer_limits_on_tls() {
    within(10, async {
        let pki = TestPki::new();
        let (factory, mut accepted) = tapped_factory(|| {
            Recorder::default().on_event(|e, t| {
                let Data(d) = e else { return };
                match &d[..] {
                    b"a" => {
                        assert_eq!(t.get_write_buffer_limits(), (LOW, HIGH));
                        assert!(matches!(
                            t.set_write_buffer_limits(Some(10), Some(20)),
                            Err(CoreError::InvalidLimits { high: 10, low: 20 })
                        ));
                        t.set_write_buffer_limits(Some(100), Some(10))
                            .expect("limits");
                        assert_eq!(t.get_write_buffer_limits(), (10, 100));
                        t.write(vec![b'x'; 100]).expect("write");
                    }
                    b"b" => t.write(vec![b'y'; 101]).expect("write"),
                    b"c" => {
                        t.write("z").expect("write");
                        t.set_write_buffer_limits(Some(0), Some(0)).expect("limits");
                    }
                    other => panic!("unexpected {other:?}"),
                }
            })
        });
        let server = create_server(factory, "127.0.0.1:0", server_options(&pki))
            .await
            .expect("server");
        let mut peer = peers::client(&pki, server.local_addrs()[0]).await;
        let mut sp = accepted.next().await;
        assert_eq!(sp.next().await, Made);
        for (ask, n) in [(b"a", 100), (b"b", 101), (b"c", 1)] {
            peer.write_all(ask).await.expect("ask");
            let mut got = vec![0; n];
            peer.read_exact(&mut got).await.expect("answer");
        }
        peer.shutdown().await.expect("close_notify");
        let mut events = Vec::new();
        loop {
            let e = sp.next().await;
            let lost = matches!(e, Lost(_));
            events.push(e);
            if lost {
                break;
            }
        }
        assert_eq!(
            events,
            [
                Data("a".into()),
                Data("b".into()),
                PauseWriting,
                ResumeWriting,
                Data("c".into()),
                PauseWriting,
                ResumeWriting,
                Eof,
                Lost(None),
            ]
        );
        server.close();
        server.wait_closed().await;
    })
    .await;
}
