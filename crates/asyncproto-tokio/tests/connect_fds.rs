//! Failed, timed-out and abandoned connects, and failed binds, leave no
//! descriptor open (the fd checks of CPython's
//! `test_create_connection_timeout`,
//! `test_create_connection_multiple_errors_local_addr` and
//! `test_create_server_cant_bind`, and happy eyeballs' losing attempts).
//!
//! A binary of its own with one test, so that nothing running in parallel
//! opens or closes descriptors while they are counted.

use std::{
    fs,
    net::{SocketAddr, TcpStream as StdTcpStream},
    time::Duration,
};

use asyncproto_core::testing::Recorder;
use asyncproto_tokio::{
    ConnectOptions, Error, Resolver, ServerOptions, create_connection, create_connection_to_host,
    create_server, create_server_on,
};
use socket2::{Domain, Socket, Type};

/// The process's open descriptors.
fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// A bound, non-listening socket: connects to it are refused, binds to its
/// address fail.
fn bound(v6: bool) -> (Socket, SocketAddr) {
    let (domain, any) = if v6 {
        (Domain::IPV6, "[::1]:0")
    } else {
        (Domain::IPV4, "127.0.0.1:0")
    };
    let socket = Socket::new(domain, Type::STREAM, None).expect("socket");
    let any: SocketAddr = any.parse().expect("addr");
    socket.bind(&any.into()).expect("bind");
    let addr = socket
        .local_addr()
        .expect("local_addr")
        .as_socket()
        .expect("inet");
    (socket, addr)
}

/// A loopback address whose connects hang (full accept queue), with what
/// keeps it so.
fn hanging() -> ((Socket, StdTcpStream), SocketAddr) {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    listener.bind(&any.into()).expect("bind");
    listener.listen(0).expect("listen");
    let addr = listener
        .local_addr()
        .expect("local_addr")
        .as_socket()
        .expect("inet");
    let filler = StdTcpStream::connect(addr).expect("filler");
    ((listener, filler), addr)
}

/// A resolver that returns `addrs` for every name.
fn fixed(addrs: Vec<SocketAddr>) -> Resolver {
    Resolver::new(move |_: &str, _: u16| {
        let addrs = addrs.clone();
        async move { Ok(addrs) }
    })
}

fn has_ipv6() -> bool {
    Socket::new(Domain::IPV6, Type::STREAM, None)
        .and_then(|s| {
            let a: SocketAddr = "[::1]:0".parse().expect("addr");
            s.bind(&a.into())
        })
        .is_ok()
}

/// Every scenario once. The sockets the scenarios need (listeners, bound
/// ports) are made outside, so only the library's own sockets are counted.
async fn scenarios(
    refusing: SocketAddr,
    hang: SocketAddr,
    good: SocketAddr,
    in_use_v6: Option<(SocketAddr, SocketAddr)>,
) {
    // test_create_connection_timeout: dropped while connecting.
    let connect = create_connection(Recorder::default, hang, ConnectOptions::new());
    assert!(
        tokio::time::timeout(Duration::from_millis(20), connect)
            .await
            .is_err()
    );

    // Refused, one after the other and staggered.
    for delay in [None, Some(Duration::from_secs(60))] {
        let err = create_connection_to_host(
            Recorder::default,
            "x",
            1,
            ConnectOptions::new()
                .resolver(fixed(vec![refusing, refusing, refusing]))
                .happy_eyeballs_delay(delay),
        )
        .await
        .expect_err("refused");
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    }

    // Happy eyeballs: the hanging attempt loses to the good one.
    let (t, done) = create_connection_to_host(
        Recorder::default,
        "x",
        1,
        ConnectOptions::new()
            .resolver(fixed(vec![refusing, hang, good]))
            .happy_eyeballs_delay(Some(Duration::from_millis(10))),
    )
    .await
    .expect("connect");
    t.close();
    drop(done.await.expect("protocol"));

    // Binding the local address fails (in use).
    let err = create_connection(
        Recorder::default,
        refusing,
        ConnectOptions::new().local_addr(refusing),
    )
    .await
    .expect_err("bind fails");
    assert!(matches!(err, Error::Bind { .. }), "{err:?}");

    // test_create_connection_multiple_errors_local_addr: a bind failure
    // for the IPv6 attempt, a refusal for the IPv4 one.
    if let Some((remote6, local6)) = in_use_v6 {
        let local4: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let resolver = Resolver::new(move |host: &str, _: u16| {
            let addrs = if host == "local.test" {
                vec![local6, local4]
            } else {
                vec![remote6, refusing]
            };
            async move { Ok(addrs) }
        });
        let err = create_connection_to_host(
            Recorder::default,
            "x",
            1,
            ConnectOptions::new()
                .resolver(resolver)
                .local_host("local.test", 0),
        )
        .await
        .expect_err("both fail");
        assert!(
            matches!(&err, Error::Connect { attempts } if attempts.len() == 2),
            "{err:?}"
        );
    }

    // test_create_server_cant_bind: the first host binds, the second fails.
    let err = create_server_on(
        Recorder::default,
        ["127.0.0.2", "127.0.0.1"],
        refusing.port(),
        ServerOptions::new(),
    )
    .await
    .expect_err("in use");
    assert!(matches!(err, Error::Bind { .. }), "{err:?}");
}

#[tokio::test]
async fn failed_and_abandoned_connects_and_binds_leave_no_descriptor_open() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let server = create_server(Recorder::default, "127.0.0.1:0", ServerOptions::new())
            .await
            .expect("create_server");
        let good = server.local_addrs()[0];
        let (_refusing_socket, refusing) = bound(false);
        let (_hang_keep, hang) = hanging();
        let v6 = has_ipv6().then(|| (bound(true), bound(true)));
        let in_use_v6 = v6.as_ref().map(|((_, r), (_, l))| (*r, *l));
        if v6.is_none() {
            println!("::1 unavailable: skipping the IPv6 bind-failure scenario");
        }

        // Warm up: the runtime's lazily created descriptors, if any.
        scenarios(refusing, hang, good, in_use_v6).await;
        while server.active_connections() > 0 {
            tokio::task::yield_now().await;
        }
        let before = open_fds();
        for _ in 0..20 {
            scenarios(refusing, hang, good, in_use_v6).await;
        }
        while server.active_connections() > 0 {
            tokio::task::yield_now().await;
        }
        let after = open_fds();
        assert_eq!(
            after, before,
            "descriptors leaked: {before} before, {after} after"
        );
        server.close();
        server.wait_closed().await;
    })
    .await
    .expect("timed out");
}
