//! The read path: the `Bytes` handed to `data_received` share the thread's
//! read buffer (split off it, no copy), so bytes a protocol keeps must stay
//! exactly what was read while that buffer goes on serving later reads, on
//! this connection and on others driven by the same thread; and the early
//! readiness registration after a read that drained the socket must not
//! miss data that arrives while the callback runs.

use std::sync::{Arc, Mutex};

use asyncproto_core::{BaseProtocol, Bytes, Protocol, Transport};
use asyncproto_tokio::{ServerOptions, create_server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{on_both_runtimes, payload, raw_connect};

/// Keeps every `keep_every`-th chunk it receives (all of them with 1) and
/// acknowledges each chunk with one byte, so that the peer sends the next
/// message only after this one was read: one read per message.
struct Keeper {
    transport: Option<Transport>,
    keep_every: usize,
    seen: usize,
    kept: Arc<Mutex<Vec<(usize, Bytes)>>>,
}

impl BaseProtocol for Keeper {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }
}

impl Protocol for Keeper {
    fn data_received(&mut self, data: Bytes) {
        if self.seen.is_multiple_of(self.keep_every) {
            self.kept.lock().unwrap().push((self.seen, data));
        }
        self.seen += 1;
        if let Some(t) = &self.transport {
            t.write(Bytes::from_static(b"k")).unwrap();
        }
    }
}

async fn kept_bytes_survive_later_reads(keep_every: usize) {
    const MESSAGES: usize = 300;
    const CLIENTS: usize = 3;
    let kept: Vec<_> = (0..CLIENTS)
        .map(|_| Arc::new(Mutex::new(Vec::new())))
        .collect();
    let queue = Arc::new(Mutex::new(kept.clone()));
    let server = create_server(
        move || Keeper {
            transport: None,
            keep_every,
            seen: 0,
            kept: queue.lock().unwrap().remove(0),
        },
        "127.0.0.1:0",
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let addr = server.local_addrs()[0];
    // Connect one at a time so that client i gets kept[i].
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let k = clients.len();
        let mut c = raw_connect(addr, None).await;
        // The server takes the factory's next list on accept: the first
        // message's ack proves it has, before the next client connects.
        c.write_all(&message(seed(k), 0)).await.unwrap();
        let mut ack = [0u8; 1];
        c.read_exact(&mut ack).await.unwrap();
        clients.push(c);
    }
    // Interleave the clients, message by message, each message a size of
    // its own (1..=700 bytes) so that reads land at odd offsets.
    for i in 1..MESSAGES {
        for (k, c) in clients.iter_mut().enumerate() {
            c.write_all(&message(seed(k), i)).await.unwrap();
        }
        for c in clients.iter_mut() {
            let mut ack = [0u8; 1];
            c.read_exact(&mut ack).await.unwrap();
        }
    }
    drop(clients);
    server.close();
    for (k, list) in kept.iter().enumerate() {
        let list = list.lock().unwrap();
        assert_eq!(list.len(), MESSAGES.div_ceil(keep_every), "client {k}");
        for (i, data) in list.iter() {
            assert_eq!(
                &data[..],
                &message(seed(k), *i)[..],
                "client {k}, message {i}: the kept bytes changed"
            );
        }
    }
}

fn seed(k: usize) -> usize {
    1000 + k
}

/// Message `i` of the client with `seed`: 1 to 700 bytes.
fn message(seed: usize, i: usize) -> Bytes {
    let len = 1 + (i * 7919 + seed * 31) % 700;
    payload(len, (seed * 1_000_003 + i) as u64)
}

async fn kept_chunks_stay_intact_when_all_are_kept() {
    kept_bytes_survive_later_reads(1).await;
}

async fn kept_chunks_stay_intact_when_few_are_kept() {
    kept_bytes_survive_later_reads(17).await;
}

/// Blocks its first `data_received` until the peer has sent its second
/// message (the two talk over std channels, not through the runtime, whose
/// thread the callback blocks), and reports every chunk.
struct Blocker {
    first: Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>,
    got: tokio::sync::mpsc::UnboundedSender<Bytes>,
}

impl BaseProtocol for Blocker {}

impl Protocol for Blocker {
    fn data_received(&mut self, data: Bytes) {
        let _ = self.got.send(data);
        if let Some((seen, sent)) = self.first.take() {
            seen.send(()).expect("the peer waits for the first message");
            sent.recv().expect("the peer sent its second message");
        }
    }
}

/// After a read that drained the socket, the connection registers for the
/// next readiness event before running the callback, and skips its next
/// read in the same poll. Data that arrives while the callback runs must
/// still be read (the registration wakes the task; the next poll reads).
async fn data_arriving_during_the_callback_is_read_on_the_next_poll() {
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let (sent_tx, sent_rx) = std::sync::mpsc::channel();
    let (got_tx, mut got) = tokio::sync::mpsc::unbounded_channel();
    let slot = Arc::new(Mutex::new(Some(((seen_tx, sent_rx), got_tx))));
    let server = create_server(
        move || {
            let (first, got) = slot.lock().unwrap().take().expect("one connection");
            Blocker {
                first: Some(first),
                got,
            }
        },
        "127.0.0.1:0",
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let addr = server.local_addrs()[0];
    // A blocking peer on a thread of its own: the callback blocks the
    // server's runtime thread while the peer sends.
    let peer = std::thread::spawn(move || {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(b"one").unwrap();
        seen_rx.recv().unwrap();
        // On loopback the bytes are in the server's receive queue when
        // write() returns: they arrive while the callback still runs.
        s.write_all(b"two").unwrap();
        sent_tx.send(()).unwrap();
        s
    });
    assert_eq!(&got.recv().await.unwrap()[..], b"one");
    assert_eq!(&got.recv().await.unwrap()[..], b"two");
    drop(peer.join().unwrap());
    server.close();
}

on_both_runtimes!(30;
    kept_chunks_stay_intact_when_all_are_kept,
    kept_chunks_stay_intact_when_few_are_kept,
    data_arriving_during_the_callback_is_read_on_the_next_poll,
);
