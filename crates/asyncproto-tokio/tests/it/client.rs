//! `create_connection`: connect errors and socket options.

use std::{io, time::Duration};

use asyncproto_core::testing::Recorder;
use asyncproto_tokio::{ConnectOptions, Error, ServerOptions, create_connection, create_server};
use socket2::SockRef;

use crate::support::{raw_listener, refusing_addr, within};

#[tokio::test]
async fn connect_to_refused_port_reports_the_attempt() {
    within(10, async {
        let (_bound, addr) = refusing_addr();
        let err = create_connection(Recorder::default, addr, ConnectOptions::new())
            .await
            .expect_err("nothing listens");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
        match &err {
            Error::Connect { attempts } => {
                assert_eq!(attempts.len(), 1);
                assert_eq!(attempts[0].0, addr);
                assert_eq!(attempts[0].1.kind(), io::ErrorKind::ConnectionRefused);
            }
            other => panic!("unexpected error: {other:?}"),
        }
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        assert_eq!(
            io::Error::from(err).kind(),
            io::ErrorKind::ConnectionRefused
        );
    })
    .await;
}

#[tokio::test]
async fn nodelay_option_off_leaves_nagle_on() {
    within(10, async {
        let (listener, addr) = raw_listener(None);
        let (t, done) = create_connection(
            Recorder::default,
            addr,
            ConnectOptions::new().nodelay(false),
        )
        .await
        .expect("connect");
        let (peer, _) = listener.accept().await.expect("accept");
        assert_eq!(
            t.with_socket(|fd| SockRef::from(&fd).tcp_nodelay().expect("getsockopt")),
            Some(false)
        );
        t.close();
        drop(done.await.expect("client protocol"));
        drop(peer);
    })
    .await;
}

#[tokio::test]
async fn keepalive_option_sets_so_keepalive_with_idle_time() {
    within(10, async {
        let (listener, addr) = raw_listener(None);
        let (t, done) = create_connection(Recorder::default, addr, ConnectOptions::new())
            .await
            .expect("connect");
        assert_eq!(
            t.with_socket(|fd| SockRef::from(&fd).keepalive().expect("getsockopt")),
            Some(false)
        );
        t.close();
        drop(done.await.expect("client protocol"));

        let idle = Duration::from_secs(42);
        let (t, done) = create_connection(
            Recorder::default,
            addr,
            ConnectOptions::new().keepalive(Some(idle)),
        )
        .await
        .expect("connect");
        let (on, time) = t
            .with_socket(|fd| {
                let s = SockRef::from(&fd);
                (
                    s.keepalive().expect("SO_KEEPALIVE"),
                    s.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
                )
            })
            .expect("socket open");
        assert!(on);
        assert_eq!(time, idle);
        t.close();
        drop(done.await.expect("client protocol"));
        drop(listener);
    })
    .await;
}

#[tokio::test]
async fn server_nodelay_option_off_applies_to_accepted_connections() {
    within(10, async {
        let (factory, mut accepted) = crate::support::tapped_factory(Recorder::default);
        let server = create_server(factory, "127.0.0.1:0", ServerOptions::new().nodelay(false))
            .await
            .expect("create_server");
        let addr = server.local_addrs()[0];
        let (t, done) = create_connection(Recorder::default, addr, ConnectOptions::new())
            .await
            .expect("connect");
        let mut conn = accepted.next().await;
        let st = conn.made().await;
        assert_eq!(
            st.with_socket(|fd| SockRef::from(&fd).tcp_nodelay().expect("getsockopt")),
            Some(false)
        );
        t.close();
        drop(done.await.expect("client protocol"));
        server.close();
        server.wait_closed().await;
    })
    .await;
}
