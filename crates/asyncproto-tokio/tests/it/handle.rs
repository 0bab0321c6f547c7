//! The transport handle used from outside the protocol: other tasks, other
//! threads.

use std::collections::HashMap;

use asyncproto_core::{
    Transport,
    testing::{Event, Recorder},
};
use asyncproto_tokio::{ConnectOptions, Error, ProtocolHandle, Server, create_connection};
use tokio::task::JoinSet;

use crate::support::{on_both_runtimes, raw_listener, read_to_end};

on_both_runtimes!(20; writes_from_other_tasks_and_threads_arrive_in_order);

#[test]
fn handles_are_clone_send_sync() {
    fn handle<T: Clone + Send + Sync + 'static>() {}
    fn send<T: Send + 'static>() {}
    fn error<T: std::error::Error + Send + Sync + 'static>() {}
    handle::<Transport>();
    handle::<Server>();
    send::<ProtocolHandle<Recorder>>();
    error::<Error>();
    error::<asyncproto_core::Error>();
}

async fn writes_from_other_tasks_and_threads_arrive_in_order() {
    const TASKS: usize = 4;
    const THREADS: usize = 4;
    const MSGS: usize = 500;
    let (listener, addr) = raw_listener(None);
    let (t, done) = create_connection(Recorder::default, addr, ConnectOptions::new())
        .await
        .expect("connect");
    let (mut peer, _) = listener.accept().await.expect("accept");
    let reader = tokio::spawn(async move { read_to_end(&mut peer).await });

    let mut tasks = JoinSet::new();
    for w in 0..TASKS {
        let t = t.clone();
        tasks.spawn(async move {
            for i in 0..MSGS {
                t.write(format!("{w}:{i}\n")).expect("write");
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        });
    }
    let threads: Vec<_> = (TASKS..TASKS + THREADS)
        .map(|w| {
            let t = t.clone();
            std::thread::spawn(move || {
                for i in 0..MSGS {
                    t.write(format!("{w}:{i}\n")).expect("write");
                }
            })
        })
        .collect();
    tasks.join_all().await;
    for th in threads {
        // The writers never wait on the runtime, so joining here cannot stall it.
        th.join().expect("writer thread");
    }
    t.close();

    let got = String::from_utf8(reader.await.expect("reader")).expect("utf-8");
    let mut next: HashMap<usize, usize> = HashMap::new();
    for line in got.lines() {
        let (w, i) = line.split_once(':').expect("w:i");
        let (w, i): (usize, usize) = (w.parse().expect("w"), i.parse().expect("i"));
        let expected = next.entry(w).or_default();
        assert_eq!(i, *expected, "writer {w}: out of order or lost");
        *expected += 1;
    }
    assert_eq!(next.len(), TASKS + THREADS);
    assert!(next.values().all(|&n| n == MSGS), "{next:?}");
    let rec = done.await.expect("client protocol");
    assert_eq!(rec.events(), [Event::Made, Event::Lost(None)]);
}
