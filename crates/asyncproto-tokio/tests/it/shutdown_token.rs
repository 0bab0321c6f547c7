//! `ServerOptions::shutdown_on`: a caller's `CancellationToken` runs the
//! server's graceful `shutdown(deadline)`.

use std::time::{Duration, Instant};

use asyncproto_core::testing::{Event, Recorder};
use asyncproto_tokio::{ServerOptions, create_server};
use tokio_util::sync::CancellationToken;

use crate::{
    happy_eyeballs::until,
    support::{raw_connect, read_to_end, refused, tapped_factory, within},
};

use Event::{Lost, Made};

/// A recorder that writes `hi` in `connection_made`.
fn greeter() -> Recorder {
    Recorder::default().on_event(|e, t| {
        if *e == Made {
            t.write("hi").expect("write");
        }
    })
}

#[tokio::test]
async fn cancelling_the_token_refuses_new_connects_drains_then_aborts_at_the_deadline() {
    within(10, async {
        const DEADLINE: Duration = Duration::from_millis(300);
        let token = CancellationToken::new();
        let (factory, mut accepted) = tapped_factory(greeter);
        let server = create_server(
            factory,
            "127.0.0.1:0",
            ServerOptions::new().shutdown_on(token.clone(), DEADLINE),
        )
        .await
        .expect("create_server");
        let addr = server.local_addrs()[0];

        // A well-behaved idle peer, and one that never reads while the server
        // has 16 MB for it.
        let mut idle = raw_connect(addr, None).await;
        let mut idle_conn = accepted.next().await;
        idle_conn.made().await;
        let _stuck = raw_connect(addr, Some(64 * 1024)).await;
        let mut stuck_conn = accepted.next().await;
        let t = stuck_conn.made().await;
        t.write(vec![0u8; 16 << 20]).expect("write");
        assert_eq!(stuck_conn.next().await, Event::PauseWriting);

        let start = Instant::now();
        token.cancel();
        // The listener goes first: once the server stops serving, while the
        // stuck connection still drains, new connects are refused.
        until(|| !server.is_serving()).await;
        assert!(server.active_connections() >= 1, "still draining");
        assert!(refused(addr).await, "connect during the drain");

        // The idle connection drains: it ends with connection_lost(None).
        assert_eq!(read_to_end(&mut idle).await, b"hi");
        assert_eq!(idle_conn.until_lost().await, [Lost(None)]);

        server.wait_closed().await;
        let took = start.elapsed();
        assert!(
            took >= DEADLINE,
            "the stuck connection was aborted after {took:?}, before the deadline"
        );
        assert_eq!(
            stuck_conn.until_lost().await,
            [Lost(None)],
            "aborted: no resume, no error"
        );
        assert_eq!(t.get_write_buffer_size(), 0);
        assert_eq!(server.active_connections(), 0);
    })
    .await;
}

#[tokio::test]
async fn the_token_also_ends_the_connections_of_an_already_closed_server() {
    within(10, async {
        let token = CancellationToken::new();
        let (factory, mut accepted) = tapped_factory(greeter);
        let server = create_server(
            factory,
            "127.0.0.1:0",
            ServerOptions::new().shutdown_on(token.clone(), Duration::from_secs(5)),
        )
        .await
        .expect("create_server");
        let addr = server.local_addrs()[0];
        let mut peer = raw_connect(addr, None).await;
        let mut conn = accepted.next().await;
        conn.made().await;

        // close() stops accepting and keeps the connection, as asyncio.
        server.close();
        assert_eq!(server.active_connections(), 1);

        token.cancel();
        assert_eq!(read_to_end(&mut peer).await, b"hi");
        assert_eq!(conn.until_lost().await, [Lost(None)]);
        server.wait_closed().await;
    })
    .await;
}

#[tokio::test]
async fn a_token_that_is_never_cancelled_does_not_hold_up_wait_closed() {
    within(10, async {
        let token = CancellationToken::new();
        let server = create_server(
            Recorder::default,
            "127.0.0.1:0",
            ServerOptions::new().shutdown_on(token.clone(), Duration::from_secs(5)),
        )
        .await
        .expect("create_server");
        server.close();
        server.wait_closed().await;
        // Cancelling afterwards is harmless.
        token.cancel();
        assert!(!server.is_serving());
    })
    .await;
}
