//! The `Bytes` handed to `data_received` share the thread's read buffer
//! (split off it, no copy): bytes a protocol keeps must stay exactly what
//! was read while that buffer goes on serving later reads, on this
//! connection and on others driven by the same thread.

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

on_both_runtimes!(30;
    kept_chunks_stay_intact_when_all_are_kept,
    kept_chunks_stay_intact_when_few_are_kept,
);
