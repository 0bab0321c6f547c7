//! Happy eyeballs (RFC 8305, asyncio's `happy_eyeballs_delay` and
//! `interleave`) and the resolver hook, on loopback addresses only.
//!
//! No upstream test runs these end to end (`cpython-test-port.md`, "Gaps").
//! A [`Resolver`] hands out loopback addresses that behave as the test
//! needs: a bound, non-listening socket refuses at once; a listener whose
//! accept queue is full ([`hanging_addr`]) never answers the SYN, so a
//! connect to it hangs until dropped. Tokio's paused clock cannot drive real
//! sockets, so the delay is measured with generous bounds, or made so long
//! that only a failure can explain the next attempt starting.
//!
//! The helpers here are shared with the `cpython` and `uvloop` ports.

use std::{
    fs,
    future::Future,
    io,
    net::{SocketAddr, TcpStream as StdTcpStream},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use asyncproto_core::testing::Recorder;
use asyncproto_tokio::{
    ConnectOptions, Error, Resolver, ServerOptions, create_connection, create_connection_to_host,
    create_server,
};
use socket2::{Domain, Socket, Type};

use crate::support::{refusing_addr, within};

// ---------------------------------------------------------------------------
// Helpers.

/// A resolver that returns `addrs` for every name and counts its calls.
pub(crate) fn fixed_resolver(addrs: Vec<SocketAddr>) -> (Resolver, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let resolver = Resolver::new(move |_host: &str, _port: u16| {
        counted.fetch_add(1, Ordering::SeqCst);
        let addrs = addrs.clone();
        async move { Ok(addrs) }
    });
    (resolver, calls)
}

/// Whether this host has IPv6 loopback (`::1` binds).
pub(crate) fn ipv6_available() -> bool {
    let Ok(socket) = Socket::new(Domain::IPV6, Type::STREAM, None) else {
        return false;
    };
    let any: SocketAddr = "[::1]:0".parse().expect("addr");
    socket.bind(&any.into()).is_ok()
}

/// Returns true, after printing why, if the test must be skipped for lack
/// of IPv6 loopback.
pub(crate) fn skip_without_ipv6(test: &str) -> bool {
    if ipv6_available() {
        return false;
    }
    println!("skipping {test}: ::1 is not available on this host");
    true
}

/// A bound, non-listening socket on `[::1]`: connects to it are refused.
pub(crate) fn refusing_addr_v6() -> (Socket, SocketAddr) {
    let socket = Socket::new(Domain::IPV6, Type::STREAM, None).expect("socket");
    let any: SocketAddr = "[::1]:0".parse().expect("addr");
    socket.bind(&any.into()).expect("bind");
    let addr = socket
        .local_addr()
        .expect("local_addr")
        .as_socket()
        .expect("inet");
    (socket, addr)
}

/// A listener whose accept queue is full, and the connection that fills it.
#[derive(Debug)]
pub(crate) struct Hanging {
    _listener: Socket,
    _filler: StdTcpStream,
}

/// An address whose connects hang: a loopback listener with `listen(0)`
/// (room for one connection on Linux) whose queue is already taken by a
/// connection nobody accepts. The kernel drops further SYNs, so a connect
/// stays in `SYN_SENT` (retrying for about two minutes) until dropped.
pub(crate) fn hanging_addr(v6: bool) -> (Hanging, SocketAddr) {
    let (domain, any) = if v6 {
        (Domain::IPV6, "[::1]:0")
    } else {
        (Domain::IPV4, "127.0.0.1:0")
    };
    let listener = Socket::new(domain, Type::STREAM, None).expect("socket");
    let any: SocketAddr = any.parse().expect("addr");
    listener.bind(&any.into()).expect("bind");
    listener.listen(0).expect("listen");
    let addr = listener
        .local_addr()
        .expect("local_addr")
        .as_socket()
        .expect("inet");
    let filler = StdTcpStream::connect(addr).expect("filler connect");
    (
        Hanging {
            _listener: listener,
            _filler: filler,
        },
        addr,
    )
}

/// How many of this host's TCP sockets are in `SYN_SENT` towards `port`
/// (from `/proc/net/tcp` and `/proc/net/tcp6`). A socket leaves the table
/// when it is closed, so 0 after a dropped connect means its socket was
/// closed.
pub(crate) fn syn_sent_to(port: u16) -> usize {
    const SYN_SENT: &str = "02";
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| fs::read_to_string(path).ok())
        .map(|table| {
            table
                .lines()
                .skip(1)
                .filter(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let remote_port = fields
                        .get(2)
                        .and_then(|a| a.rsplit(':').next())
                        .and_then(|p| u16::from_str_radix(p, 16).ok());
                    remote_port == Some(port) && fields.get(3) == Some(&SYN_SENT)
                })
                .count()
        })
        .sum()
}

/// Yields until `cond` holds (bounded by the caller's `within`).
pub(crate) async fn until(mut cond: impl FnMut() -> bool) {
    while !cond() {
        tokio::task::yield_now().await;
    }
}

/// Waits until `cond` holds while driving `fut`, which must not complete
/// first (bounded by the caller's `within`).
pub(crate) async fn until_while<F: Future>(cond: impl FnMut() -> bool, fut: Pin<&mut F>) {
    tokio::select! {
        () = until(cond) => {}
        _ = fut => panic!("the future under test completed while waiting"),
    }
}

/// The addresses of a `create_connection` failure, in order.
fn attempt_addrs(err: &Error) -> Vec<SocketAddr> {
    match err {
        Error::Connect { attempts } => attempts.iter().map(|(a, _)| *a).collect(),
        other => panic!("expected Error::Connect, got {other:?}"),
    }
}

/// A server on 127.0.0.1 that records its connections.
async fn server() -> (asyncproto_tokio::Server, SocketAddr) {
    let server = create_server(Recorder::default, "127.0.0.1:0", ServerOptions::new())
        .await
        .expect("create_server");
    let addr = server.local_addrs()[0];
    (server, addr)
}

async fn close(server: asyncproto_tokio::Server) {
    server.close();
    server.close_clients();
    server.wait_closed().await;
}

const LONG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Sequential (no delay) and the resolver hook.

#[tokio::test]
async fn a_refused_address_falls_through_to_the_next_one() {
    within(10, async {
        let (server, good) = server().await;
        let (_bound, refusing) = refusing_addr();
        let (resolver, calls) = fixed_resolver(vec![refusing, good]);
        let (t, done) = create_connection_to_host(
            Recorder::default,
            "service.test",
            good.port(),
            ConnectOptions::new().resolver(resolver),
        )
        .await
        .expect("connects through the second address");
        assert_eq!(t.peer_addr(), Some(good));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        t.close();
        drop(done.await.expect("protocol"));
        close(server).await;
    })
    .await;
}

#[tokio::test]
async fn the_resolver_gets_the_host_and_port_it_was_given() {
    within(10, async {
        let (server, good) = server().await;
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let resolver = Resolver::new(move |host: &str, port: u16| {
            log.lock().expect("lock").push((host.to_owned(), port));
            async move { Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))]) }
        });
        let (t, done) = create_connection_to_host(
            Recorder::default,
            "backend.internal",
            good.port(),
            ConnectOptions::new().resolver(resolver),
        )
        .await
        .expect("connect");
        assert_eq!(
            *seen.lock().expect("lock"),
            [("backend.internal".to_owned(), good.port())]
        );
        t.close();
        drop(done.await.expect("protocol"));
        close(server).await;
    })
    .await;
}

#[tokio::test]
async fn a_resolver_error_is_returned_as_the_io_error() {
    within(10, async {
        let resolver = Resolver::new(|_: &str, _: u16| async {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no such host: nowhere",
            ))
        });
        let err = create_connection_to_host(
            Recorder::default,
            "nowhere",
            80,
            ConnectOptions::new().resolver(resolver),
        )
        .await
        .expect_err("resolution fails");
        match &err {
            Error::Io(e) => assert_eq!(e.to_string(), "no such host: nowhere"),
            other => panic!("expected Error::Io, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn the_system_resolver_resolves_localhost() {
    within(10, async {
        let (server, good) = server().await;
        let (t, done) = create_connection_to_host(
            Recorder::default,
            "localhost",
            good.port(),
            ConnectOptions::new(),
        )
        .await
        .expect("localhost reaches 127.0.0.1 (after a refused ::1, if any)");
        assert_eq!(t.peer_addr(), Some(good));
        t.close();
        drop(done.await.expect("protocol"));
        close(server).await;
    })
    .await;
}

#[tokio::test]
async fn without_a_delay_a_hanging_attempt_holds_up_the_next() {
    within(10, async {
        let (server, good) = server().await;
        let (_hanging, slow) = hanging_addr(false);
        let (resolver, _) = fixed_resolver(vec![slow, good]);
        let connect = create_connection_to_host(
            Recorder::default,
            "service.test",
            good.port(),
            ConnectOptions::new().resolver(resolver),
        );
        // Sequential, as asyncio without happy_eyeballs_delay: the second
        // address is not tried while the first still hangs.
        let res = tokio::time::timeout(Duration::from_millis(500), connect).await;
        assert!(res.is_err(), "connected before the first attempt ended");
        assert_eq!(server.active_connections(), 0);
        assert_eq!(
            syn_sent_to(slow.port()),
            0,
            "the dropped attempt's socket is closed"
        );
        close(server).await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// Staggered attempts.

#[tokio::test]
async fn a_hanging_first_attempt_is_overtaken_after_the_delay() {
    within(10, async {
        const DELAY: Duration = Duration::from_millis(200);
        let (server, good) = server().await;
        let (_hanging, slow) = hanging_addr(false);
        let (resolver, _) = fixed_resolver(vec![slow, good]);
        let start = Instant::now();
        let (t, done) = create_connection_to_host(
            Recorder::default,
            "service.test",
            good.port(),
            ConnectOptions::new()
                .resolver(resolver)
                .happy_eyeballs_delay(Some(DELAY)),
        )
        .await
        .expect("the second attempt connects");
        let took = start.elapsed();
        assert_eq!(t.peer_addr(), Some(good));
        assert!(
            took >= DELAY,
            "second attempt started after {took:?}, before the delay"
        );
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert_eq!(
            syn_sent_to(slow.port()),
            0,
            "the losing attempt's socket is closed once the winner connects"
        );
        t.close();
        drop(done.await.expect("protocol"));
        close(server).await;
    })
    .await;
}

#[tokio::test]
async fn with_a_delay_a_failed_attempt_starts_the_next_at_once() {
    within(10, async {
        let (server, good) = server().await;
        let (_bound, refusing) = refusing_addr();
        let (resolver, _) = fixed_resolver(vec![refusing, good]);
        // A delay far longer than `within`: only the refusal can have
        // started the second attempt.
        let (t, done) = create_connection_to_host(
            Recorder::default,
            "service.test",
            good.port(),
            ConnectOptions::new()
                .resolver(resolver)
                .happy_eyeballs_delay(Some(LONG)),
        )
        .await
        .expect("connect");
        assert_eq!(t.peer_addr(), Some(good));
        t.close();
        drop(done.await.expect("protocol"));
        close(server).await;
    })
    .await;
}

#[tokio::test]
async fn dropping_the_connect_closes_every_running_attempt() {
    within(10, async {
        const DELAY: Duration = Duration::from_millis(100);
        let (_h1, slow1) = hanging_addr(false);
        let (_h2, slow2) = hanging_addr(false);
        let (resolver, _) = fixed_resolver(vec![slow1, slow2]);
        let start = Instant::now();
        let connect = create_connection_to_host(
            Recorder::default,
            "service.test",
            80,
            ConnectOptions::new()
                .resolver(resolver)
                .happy_eyeballs_delay(Some(DELAY)),
        );
        // Boxed, so that `drop` below really drops the future.
        let mut connect = Box::pin(connect);
        until_while(
            || syn_sent_to(slow1.port()) == 1 && syn_sent_to(slow2.port()) == 1,
            connect.as_mut(),
        )
        .await;
        let took = start.elapsed();
        assert!(
            took >= DELAY,
            "second attempt started after {took:?}, before the delay"
        );
        drop(connect);
        assert_eq!(
            syn_sent_to(slow1.port()),
            0,
            "first attempt's socket closed"
        );
        assert_eq!(
            syn_sent_to(slow2.port()),
            0,
            "second attempt's socket closed"
        );
    })
    .await;
}

#[tokio::test]
async fn when_every_attempt_fails_the_error_lists_each_in_order() {
    within(10, async {
        let (_b1, r1) = refusing_addr();
        let (_b2, r2) = refusing_addr();
        let (_b3, r3) = refusing_addr();
        for delay in [None, Some(LONG)] {
            let (resolver, _) = fixed_resolver(vec![r1, r2, r3]);
            let err = create_connection_to_host(
                Recorder::default,
                "service.test",
                80,
                ConnectOptions::new()
                    .resolver(resolver)
                    .happy_eyeballs_delay(delay),
            )
            .await
            .expect_err("all refused");
            assert_eq!(attempt_addrs(&err), [r1, r2, r3], "delay {delay:?}");
            let Error::Connect { attempts } = &err else {
                unreachable!()
            };
            for (_, e) in attempts {
                assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
            }
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
            let msg = err.to_string();
            assert!(msg.starts_with("multiple exceptions: "), "{msg}");
            for a in [r1, r2, r3] {
                assert!(msg.contains(&format!("[{a}]")), "{msg}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn create_connection_with_an_address_also_races_with_a_delay() {
    within(10, async {
        let (server, good) = server().await;
        let (_hanging, slow) = hanging_addr(false);
        // `create_connection` takes resolved addresses too.
        let addrs = [slow, good];
        let (t, done) = create_connection(
            Recorder::default,
            &addrs[..],
            ConnectOptions::new().happy_eyeballs_delay(Some(Duration::from_millis(100))),
        )
        .await
        .expect("connect");
        assert_eq!(t.peer_addr(), Some(good));
        t.close();
        drop(done.await.expect("protocol"));
        close(server).await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// Interleaving.

/// Three refusing `::1` addresses, then two refusing `127.0.0.1` ones.
fn mixed_families() -> (Vec<Socket>, [SocketAddr; 3], [SocketAddr; 2]) {
    let (s1, a) = refusing_addr_v6();
    let (s2, b) = refusing_addr_v6();
    let (s3, c) = refusing_addr_v6();
    let (s4, x) = refusing_addr();
    let (s5, y) = refusing_addr();
    (vec![s1, s2, s3, s4, s5], [a, b, c], [x, y])
}

async fn order_tried(opts: ConnectOptions, addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let (resolver, _) = fixed_resolver(addrs);
    let err = create_connection_to_host(
        Recorder::default,
        "service.test",
        80,
        opts.resolver(resolver),
    )
    .await
    .expect_err("all refused");
    attempt_addrs(&err)
}

#[tokio::test]
async fn setting_the_delay_alternates_families_starting_with_the_first() {
    if skip_without_ipv6("setting_the_delay_alternates_families_starting_with_the_first") {
        return;
    }
    within(10, async {
        let (_held, [a, b, c], [x, y]) = mixed_families();
        let resolved = vec![a, b, c, x, y];
        let delayed = ConnectOptions::new().happy_eyeballs_delay(Some(LONG));
        assert_eq!(
            order_tried(delayed, resolved.clone()).await,
            [a, x, b, y, c],
            "interleave defaults to 1 with a delay"
        );
        assert_eq!(
            order_tried(ConnectOptions::new(), resolved).await,
            [a, b, c, x, y],
            "no delay: the resolver's order"
        );
    })
    .await;
}

#[tokio::test]
async fn interleave_takes_that_many_of_the_first_family_then_alternates() {
    if skip_without_ipv6("interleave_takes_that_many_of_the_first_family_then_alternates") {
        return;
    }
    within(10, async {
        let (_held, [a, b, c], [x, y]) = mixed_families();
        // Without a delay: reordered, still one after the other.
        let two = ConnectOptions::new().interleave(Some(2));
        assert_eq!(order_tried(two, vec![a, b, c, x, y]).await, [a, b, x, c, y]);
        // The first family is the first address's, here IPv4.
        let one = ConnectOptions::new().interleave(Some(1));
        assert_eq!(order_tried(one, vec![x, y, a, b, c]).await, [x, a, y, b, c]);
    })
    .await;
}

#[tokio::test]
async fn interleave_zero_keeps_the_resolver_order_even_with_a_delay() {
    if skip_without_ipv6("interleave_zero_keeps_the_resolver_order_even_with_a_delay") {
        return;
    }
    within(10, async {
        let (_held, [a, b, c], [x, y]) = mixed_families();
        let opts = ConnectOptions::new()
            .happy_eyeballs_delay(Some(LONG))
            .interleave(Some(0));
        assert_eq!(
            order_tried(opts, vec![a, b, c, x, y]).await,
            [a, b, c, x, y]
        );
    })
    .await;
}

#[tokio::test]
async fn a_hanging_ipv6_address_falls_back_to_ipv4_after_the_delay() {
    if skip_without_ipv6("a_hanging_ipv6_address_falls_back_to_ipv4_after_the_delay") {
        return;
    }
    within(10, async {
        // The port page's suggested test: [v6 that never answers, v4
        // listener] with a 250 ms delay connects through v4 after about
        // 250 ms.
        const DELAY: Duration = Duration::from_millis(250);
        let (server, good) = server().await;
        let (_hanging, slow) = hanging_addr(true);
        let (resolver, _) = fixed_resolver(vec![slow, good]);
        let start = Instant::now();
        let (t, done) = create_connection_to_host(
            Recorder::default,
            "dual.test",
            good.port(),
            ConnectOptions::new()
                .resolver(resolver)
                .happy_eyeballs_delay(Some(DELAY)),
        )
        .await
        .expect("IPv4 connects");
        let took = start.elapsed();
        assert_eq!(t.peer_addr(), Some(good));
        assert!(
            took >= DELAY && took < Duration::from_secs(5),
            "took {took:?}"
        );
        assert_eq!(syn_sent_to(slow.port()), 0);
        t.close();
        drop(done.await.expect("protocol"));
        close(server).await;
    })
    .await;
}
