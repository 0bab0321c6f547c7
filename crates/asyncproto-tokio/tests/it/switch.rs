//! `Transport::set_protocol` on real loopback connections: a line protocol
//! that upgrades to raw echo mid-stream (server side), and a client whose
//! `ProtocolHandle` still resolves to the original protocol after a switch.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use asyncproto_core::{BaseProtocol, Bytes, Error as CoreError, Protocol, Transport};
use asyncproto_tokio::{ConnectOptions, ServerOptions, create_connection, create_server};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::oneshot,
};

use crate::support::{checksum, echo, payload, raw_connect, tap, within};

/// What the server's protocols saw, shared with the test.
#[derive(Default)]
struct Seen {
    /// Lines the line protocol handled before the upgrade.
    lines: Mutex<Vec<Vec<u8>>>,
    /// `connection_lost` ran on the line protocol (it must not, after the
    /// switch).
    line_lost: AtomicBool,
    /// `connection_lost` ran on the raw echo protocol.
    echo_lost: Mutex<Option<oneshot::Sender<Option<String>>>>,
}

/// Reads `\n`-terminated lines; on `UPGRADE\n` hands the connection to
/// [`RawEcho`], giving it the bytes that followed the line in the same
/// chunk first.
struct LineProto {
    transport: Option<Transport>,
    buf: Vec<u8>,
    switched: bool,
    seen: Arc<Seen>,
}

impl BaseProtocol for LineProto {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }

    fn connection_lost(&mut self, _exc: Option<CoreError>) {
        self.seen.line_lost.store(true, Ordering::SeqCst);
    }
}

impl Protocol for LineProto {
    fn data_received(&mut self, data: Bytes) {
        assert!(!self.switched, "line protocol got data after the switch");
        self.buf.extend_from_slice(&data);
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            if line == b"UPGRADE\n" {
                let transport = self.transport.clone().expect("connection_made");
                let mut next = RawEcho {
                    transport: transport.clone(),
                    seen: Arc::clone(&self.seen),
                };
                let rest = std::mem::take(&mut self.buf);
                if !rest.is_empty() {
                    next.data_received(rest.into());
                }
                transport.set_protocol(next);
                self.switched = true;
                return;
            }
            self.seen.lines.lock().expect("lines").push(line);
        }
    }
}

/// Writes back every byte; closes on EOF.
struct RawEcho {
    transport: Transport,
    seen: Arc<Seen>,
}

impl BaseProtocol for RawEcho {
    fn connection_made(&mut self, _transport: Transport) {
        panic!("set_protocol gives the new protocol no connection_made");
    }

    fn connection_lost(&mut self, exc: Option<CoreError>) {
        if let Some(tx) = self.seen.echo_lost.lock().expect("echo_lost").take() {
            let _ = tx.send(exc.map(|e| e.to_string()));
        }
    }
}

impl Protocol for RawEcho {
    fn data_received(&mut self, data: Bytes) {
        self.transport.write(data).expect("echo write");
    }
}

/// Chunk sizes in 1..=`max` from `seed` (xorshift).
fn chunk_sizes(seed: u64, max: u64) -> impl FnMut() -> usize {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        usize::try_from(x % max + 1).expect("small")
    }
}

/// Sends `HELLO\nUPGRADE\n` + 1 MB in chunks (`first` bytes first, then
/// pseudo-random sizes), half-closes, and checks the echo is exactly the
/// 1 MB followed by EOF; then the server's protocols saw what they should.
async fn upgrade_then_echo(first: usize, seed: u64) {
    let seen = Arc::new(Seen::default());
    let (lost_tx, lost_rx) = oneshot::channel();
    *seen.echo_lost.lock().expect("echo_lost") = Some(lost_tx);
    let for_factory = Arc::clone(&seen);
    let factory = move || LineProto {
        transport: None,
        buf: Vec::new(),
        switched: false,
        seen: Arc::clone(&for_factory),
    };
    let srv = create_server(factory, "127.0.0.1:0", ServerOptions::new())
        .await
        .expect("create_server");
    let addr = srv.local_addrs()[0];

    let body = payload(1_000_000, seed);
    let mut message = b"HELLO\nUPGRADE\n".to_vec();
    message.extend_from_slice(&body);

    let (mut rd, mut wr) = raw_connect(addr, None).await.into_split();
    let writer = tokio::spawn(async move {
        let mut next = chunk_sizes(seed, 8192);
        let mut at = 0;
        let mut size = first;
        while at < message.len() {
            let end = (at + size).min(message.len());
            wr.write_all(&message[at..end]).await.expect("send");
            at = end;
            size = next();
        }
        wr.shutdown().await.expect("half-close");
    });
    let mut back = Vec::with_capacity(body.len());
    rd.read_to_end(&mut back).await.expect("echo, then EOF");
    writer.await.expect("writer");
    assert_eq!(back.len(), body.len(), "none lost, none twice");
    assert_eq!(checksum(&back), checksum(&body), "the same bytes in order");

    assert_eq!(lost_rx.await.expect("echo's connection_lost"), None);
    assert_eq!(*seen.lines.lock().expect("lines"), [b"HELLO\n".to_vec()]);
    assert!(
        !seen.line_lost.load(Ordering::SeqCst),
        "the line protocol got connection_lost after the switch"
    );
    srv.close();
    srv.wait_closed().await;
}

/// The upgrade line and the first 1000 bytes for the new protocol arrive
/// in one write (usually one chunk): the line protocol hands them over.
#[tokio::test]
async fn upgrade_hands_bytes_after_the_line_to_the_new_protocol() {
    within(30, upgrade_then_echo(14 + 1000, 7)).await;
}

/// Chunks of 1..=8192 bytes from the first byte on, so `UPGRADE\n` may be
/// split and the switch may land anywhere in a chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_in_arbitrary_chunks_echoes_every_byte_once() {
    within(30, upgrade_then_echo(3, 11)).await;
}

/// A client protocol that switches to another one on its first `\n`.
struct Original {
    transport: Option<Transport>,
    got: Vec<u8>,
    next: Option<crate::support::Tap>,
    switched: Option<oneshot::Sender<()>>,
    lost: bool,
}

impl BaseProtocol for Original {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }

    fn connection_lost(&mut self, _exc: Option<CoreError>) {
        self.lost = true;
    }
}

impl Protocol for Original {
    fn data_received(&mut self, data: Bytes) {
        assert!(self.next.is_some(), "original got data after the switch");
        self.got.extend_from_slice(&data);
        if self.got.ends_with(b"\n") {
            let next = self.next.take().expect("not switched yet");
            self.transport
                .as_ref()
                .expect("connection_made")
                .set_protocol(next);
            if let Some(tx) = self.switched.take() {
                let _ = tx.send(());
            }
        }
    }
}

/// After a switch, a client's `ProtocolHandle` resolves to the original
/// protocol (with what it got before the switch, and no `connection_lost`),
/// while the new protocol got the later data, the EOF and
/// `connection_lost`.
#[tokio::test]
async fn protocol_handle_resolves_to_the_original_after_a_switch() {
    use asyncproto_core::testing::{Event, Recorder};

    within(10, async {
        let srv = create_server(echo, "127.0.0.1:0", ServerOptions::new())
            .await
            .expect("create_server");
        let addr = srv.local_addrs()[0];

        let (next, mut probe) = tap(Recorder::default());
        let (switched_tx, switched) = oneshot::channel();
        let original = Original {
            transport: None,
            got: Vec::new(),
            next: Some(next),
            switched: Some(switched_tx),
            lost: false,
        };
        let (t, handle) = create_connection(move || original, addr, ConnectOptions::new())
            .await
            .expect("connect");
        t.write("one\n").expect("write");
        switched.await.expect("switched");

        t.write("two").expect("write");
        assert_eq!(probe.data(3).await, b"two");
        t.write_eof().expect("write_eof");
        assert_eq!(probe.until_lost().await, [Event::Eof, Event::Lost(None)]);

        let original = handle.await.expect("the original protocol");
        assert_eq!(original.got, b"one\n");
        assert!(!original.lost, "connection_lost went to the new protocol");
        assert!(original.next.is_none());

        srv.close();
        srv.wait_closed().await;
    })
    .await;
}
