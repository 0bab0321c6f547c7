//! TCP transports: `create_connection` and the socket the connection task
//! pumps.

use std::{
    fmt,
    future::{Future, poll_fn},
    io,
    net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6},
    pin::{Pin, pin},
    sync::Arc,
    task::Poll,
    time::Duration,
};

use asyncproto_core::{StreamProtocol, Transport, TransportInfo, lifecycle::Connection};
use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpSocket, TcpStream, ToSocketAddrs, lookup_host};

use crate::{
    conn::{ProtocolHandle, conn_span},
    error::Error,
    socket::{self, SocketIo},
};

/// The future a [`Resolver`] function returns: the addresses of a host, in
/// the order they should be tried.
pub type ResolveFuture = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

type ResolveFn = dyn Fn(&str, u16) -> ResolveFuture + Send + Sync;

/// Name resolution for the host-name entry points (asyncio's `getaddrinfo`):
/// [`create_connection_to_host`], [`ConnectOptions::local_host`] and
/// [`create_server_on`](crate::create_server_on).
///
/// The default, [`Resolver::system`], is Tokio's
/// [`lookup_host`](tokio::net::lookup_host) (`getaddrinfo` on a blocking
/// thread). [`Resolver::new`] replaces it with any async function — a DNS
/// client, a static table, or a test double that hands out loopback
/// addresses. An IP literal (`"127.0.0.1"`, `"::1"`, `"fe80::1%2"`) never
/// reaches the resolver, as asyncio skips `getaddrinfo` for one.
///
/// Cloning is cheap (an `Arc`); one resolver can serve clients and servers.
///
/// # Examples
///
/// ```
/// use std::net::SocketAddr;
/// use asyncproto_tokio::{ConnectOptions, Resolver};
///
/// // "db" is 127.0.0.1; any other name is unknown.
/// let resolver = Resolver::new(|host: &str, port: u16| {
///     let found: Vec<SocketAddr> = match host {
///         "db" => vec![([127, 0, 0, 1], port).into()],
///         _ => vec![],
///     };
///     async move { Ok(found) }
/// });
/// let opts = ConnectOptions::new().resolver(resolver);
/// # let _ = opts;
/// ```
#[derive(Clone, Default)]
pub struct Resolver(Option<Arc<ResolveFn>>);

impl Resolver {
    /// The system resolver: Tokio's [`lookup_host`](tokio::net::lookup_host).
    pub fn system() -> Self {
        Self(None)
    }

    /// A resolver that calls `f(host, port)`. The future must not borrow
    /// `host` (copy it if needed); it returns the addresses to try, in
    /// order. An empty list makes the caller fail with
    /// [`Error::NoAddresses`]; an error is returned as [`Error::Io`].
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(&str, u16) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'static,
    {
        Self(Some(Arc::new(move |host: &str, port: u16| {
            Box::pin(f(host, port)) as ResolveFuture
        })))
    }

    /// Resolves `host` and `port` with this resolver (the resolver is asked
    /// even for an IP literal).
    ///
    /// # Errors
    ///
    /// Whatever the resolver returns.
    pub async fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        match &self.0 {
            None => Ok(lookup_host((host, port)).await?.collect()),
            Some(f) => f(host, port).await,
        }
    }

    /// Resolves `host`: an IP literal directly, anything else through the
    /// resolver. Empty is [`Error::NoAddresses`].
    pub(crate) async fn resolve_host(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, Error> {
        if let Some(addr) = ip_literal(host, port) {
            return Ok(vec![addr]);
        }
        let addrs = self.resolve(host, port).await?;
        if addrs.is_empty() {
            return Err(Error::NoAddresses);
        }
        Ok(addrs)
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            None => "Resolver::system",
            Some(_) => "Resolver::custom",
        })
    }
}

/// `host` as an IP address, if it is one: `"127.0.0.1"`, `"::1"`, or an
/// IPv6 address with a numeric scope id, `"fe80::1%2"` (asyncio keeps the
/// scope: `('fe80::1', 80, 0, 2)`).
fn ip_literal(host: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    let (ip, scope) = host.split_once('%')?;
    let ip: Ipv6Addr = ip.parse().ok()?;
    let scope: u32 = scope.parse().ok()?;
    Some(SocketAddrV6::new(ip, port, 0, scope).into())
}

/// The local address(es) a client socket binds before connecting.
#[derive(Debug, Clone)]
enum Local {
    None,
    Addr(SocketAddr),
    Host(String, u16),
}

/// Options for [`create_connection`] and [`create_connection_to_host`], with
/// asyncio's defaults.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use asyncproto_tokio::ConnectOptions;
///
/// let opts = ConnectOptions::new()
///     .local_addr("127.0.0.1:0".parse().unwrap())
///     .keepalive(Some(Duration::from_secs(30)))
///     .happy_eyeballs_delay(Some(Duration::from_millis(250)));
/// # let _ = opts;
/// ```
#[derive(Debug, Clone)]
#[must_use = "options do nothing until passed to create_connection"]
pub struct ConnectOptions {
    local: Local,
    nodelay: bool,
    keepalive: Option<Duration>,
    happy_eyeballs_delay: Option<Duration>,
    interleave: Option<usize>,
    resolver: Resolver,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::TlsClientOptions>,
    #[cfg(feature = "tls")]
    pub(crate) tls_server: Option<crate::tls::TlsServerOptions>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectOptions {
    /// The defaults: no local address, `TCP_NODELAY` on, no keepalive,
    /// addresses tried one after the other (no happy eyeballs), the system
    /// resolver.
    pub fn new() -> Self {
        Self {
            local: Local::None,
            nodelay: true,
            keepalive: None,
            happy_eyeballs_delay: None,
            interleave: None,
            resolver: Resolver::system(),
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            tls_server: None,
        }
    }

    /// Runs TLS as the client over the connection (asyncio's `ssl=`,
    /// `server_hostname=`, `ssl_handshake_timeout=`,
    /// `ssl_shutdown_timeout=`; feature `tls`). The handshake finishes before
    /// `connection_made`; see [`TlsClientOptions`](crate::TlsClientOptions)
    /// for the server name's default. Default: no TLS.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::TlsClientOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Runs TLS as the **server** over an accepted socket given to
    /// [`connect_accepted_socket`](crate::connect_accepted_socket) (asyncio:
    /// `connect_accepted_socket(…, ssl=server_context)`; feature `tls`).
    /// Ignored by the `create_connection` functions. Default: no TLS.
    #[cfg(feature = "tls")]
    pub fn tls_server(mut self, tls: crate::tls::TlsServerOptions) -> Self {
        self.tls_server = Some(tls);
        self
    }

    /// Binds the socket to this address before connecting (asyncio's
    /// `local_addr`). As in asyncio, an address of the other IP family
    /// cannot be tried with it: that attempt fails with "no matching local
    /// address" (`AddrNotAvailable`). Replaces [`local_host`](Self::local_host).
    /// Default: none.
    pub fn local_addr(mut self, addr: SocketAddr) -> Self {
        self.local = Local::Addr(addr);
        self
    }

    /// Binds the socket to an address of `host` before connecting (asyncio's
    /// `local_addr=(host, port)`). `host` is resolved with the
    /// [`resolver`](Self::resolver) (an IP literal skips it); each attempt
    /// binds the first address of its family that binds, and an attempt
    /// with no address of its family fails with "no matching local
    /// address", as asyncio. Replaces [`local_addr`](Self::local_addr).
    pub fn local_host(mut self, host: impl Into<String>, port: u16) -> Self {
        self.local = Local::Host(host.into(), port);
        self
    }

    /// Sets `TCP_NODELAY`. Default: on, as asyncio sets it on every TCP
    /// transport.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// Turns on `SO_KEEPALIVE` with this idle time before the first probe.
    /// Default: off (asyncio 3.13's `keep_alive=False`).
    pub fn keepalive(mut self, idle: Option<Duration>) -> Self {
        self.keepalive = idle;
        self
    }

    /// Happy eyeballs (RFC 8305, asyncio's `happy_eyeballs_delay`): with
    /// `Some(delay)`, the next address is tried when the previous attempt
    /// fails or after `delay`, whichever comes first, while earlier attempts
    /// go on; the first to connect wins and the others are dropped (their
    /// sockets closed). Setting it makes [`interleave`](Self::interleave)
    /// default to 1. RFC 8305 recommends 250 ms. Default: `None`, one
    /// address after the other, as asyncio.
    pub fn happy_eyeballs_delay(mut self, delay: Option<Duration>) -> Self {
        self.happy_eyeballs_delay = delay;
        self
    }

    /// Reorders the resolved addresses by family before trying them
    /// (asyncio's `interleave`, RFC 8305's "First Address Family Count"):
    /// `Some(n)` takes `n` addresses of the first family, then alternates
    /// families. `Some(0)` keeps the resolver's order. Default: `None`,
    /// which means 1 when [`happy_eyeballs_delay`](Self::happy_eyeballs_delay)
    /// is set and no reordering otherwise, as asyncio.
    pub fn interleave(mut self, first_family_count: Option<usize>) -> Self {
        self.interleave = first_family_count;
        self
    }

    /// The resolver for [`create_connection_to_host`]'s host and for
    /// [`local_host`](Self::local_host). Default: [`Resolver::system`].
    /// [`create_connection`] resolves its `addr` with Tokio and does not use
    /// it.
    pub fn resolver(mut self, resolver: Resolver) -> Self {
        self.resolver = resolver;
        self
    }
}

/// Connects to `addr` over TCP and runs the protocol from `factory` on it
/// (asyncio: `loop.create_connection(protocol_factory, host, port)`).
///
/// `addr` is anything [`tokio::net::lookup_host`] resolves
/// (`"localhost:8888"`, a `SocketAddr`, `("example.org", 80)`); the
/// addresses are tried in turn until one connects, or raced as
/// [`ConnectOptions::happy_eyeballs_delay`] says. To resolve a host name
/// with a [`Resolver`] of your own, use [`create_connection_to_host`].
/// The factory is called once, after the connection is made;
/// `connection_made` has run when this returns.
///
/// Returns the transport and a [`ProtocolHandle`] that resolves to the
/// protocol after `connection_lost`.
///
/// # Errors
///
/// - [`Error::NoAddresses`] if `addr` (or [`ConnectOptions::local_host`])
///   resolves to nothing;
/// - [`Error::Connect`] with every attempt's errors, in the order tried, if
///   none connects (e.g. `ConnectionRefused`; asyncio 3.12's
///   `all_errors=True`). A failed bind of the local address is listed there
///   as "error while attempting to bind on address …";
/// - [`Error::Bind`] if the one failure was binding the local address (as
///   asyncio raises the one `OSError`);
/// - [`Error::Protocol`] if `connection_made` panicked: the connection was
///   aborted and `connection_lost(Some(ProtocolPanicked))` was delivered;
/// - [`Error::Io`] if resolution fails.
///
/// # Panics
///
/// With [`ConnectOptions::happy_eyeballs_delay`] set, on a runtime without
/// the time driver.
///
/// # Cancel safety
///
/// Not cancel safe once connected: dropping the future while
/// `connection_made` runs is not possible (it is synchronous), but dropping it
/// during the connect closes every half-made socket and calls no callback.
///
/// # Examples
///
/// ```no_run
/// use asyncproto_tokio::{create_connection, ConnectOptions};
/// use asyncproto_core::testing::Recorder;
///
/// # #[allow(dead_code)]
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let (transport, done) =
///     create_connection(Recorder::default, "127.0.0.1:8888", ConnectOptions::new()).await?;
/// transport.write("hello")?;
/// transport.close();
/// let protocol = done.await?;
/// println!("{:?}", protocol.events());
/// # Ok(()) }
/// ```
pub async fn create_connection<P, F>(
    factory: F,
    addr: impl ToSocketAddrs,
    options: ConnectOptions,
) -> Result<(Transport, ProtocolHandle<P>), Error>
where
    P: StreamProtocol,
    F: FnOnce() -> P,
{
    let (addrs, locals) = tokio::join!(
        async { Ok::<_, Error>(lookup_host(addr).await?.collect::<Vec<_>>()) },
        resolve_local(&options),
    );
    let (addrs, locals) = (addrs?, locals?);
    if addrs.is_empty() {
        return Err(Error::NoAddresses);
    }
    connect_and_establish(factory, addrs, locals, options, None).await
}

/// Connects to `host`:`port` over TCP, resolving `host` with the options'
/// [`Resolver`], and runs the protocol from `factory` on it (asyncio:
/// `loop.create_connection(protocol_factory, host, port)`).
///
/// `host` is an IP literal (`"127.0.0.1"`, `"::1"`, `"fe80::1%2"` with its
/// scope id), used as is, or a name, passed to
/// [`ConnectOptions::resolver`] (default: the system resolver). The
/// resolved addresses are tried as [`create_connection`] tries them: in
/// turn, or with happy eyeballs and interleaving.
///
/// # Errors
///
/// As [`create_connection`]; [`Error::NoAddresses`] if the resolver returns
/// no address, [`Error::Io`] with the resolver's error.
///
/// # Panics
///
/// As [`create_connection`].
///
/// # Cancel safety
///
/// As [`create_connection`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use asyncproto_core::testing::Recorder;
/// use asyncproto_tokio::{
///     create_connection_to_host, create_server, ConnectOptions, Resolver, ServerOptions,
/// };
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = create_server(Recorder::default, "127.0.0.1:0", ServerOptions::new()).await?;
/// let port = server.local_addrs()[0].port();
///
/// // "backend" is the server; try its addresses with happy eyeballs.
/// let resolver = Resolver::new(|_host: &str, port: u16| async move {
///     Ok(vec![([127, 0, 0, 1], port).into()])
/// });
/// let opts = ConnectOptions::new()
///     .resolver(resolver)
///     .happy_eyeballs_delay(Some(Duration::from_millis(250)));
/// let (transport, done) =
///     create_connection_to_host(Recorder::default, "backend", port, opts).await?;
/// transport.close();
/// done.await?;
/// server.close();
/// server.wait_closed().await;
/// # Ok(()) }
/// ```
pub async fn create_connection_to_host<P, F>(
    factory: F,
    host: &str,
    port: u16,
    options: ConnectOptions,
) -> Result<(Transport, ProtocolHandle<P>), Error>
where
    P: StreamProtocol,
    F: FnOnce() -> P,
{
    let (addrs, locals) = tokio::join!(
        options.resolver.resolve_host(host, port),
        resolve_local(&options),
    );
    let (addrs, locals) = (addrs?, locals?);
    connect_and_establish(factory, addrs, locals, options, Some(host)).await
}

/// The local addresses to bind, resolved; `None` if none was asked for.
async fn resolve_local(options: &ConnectOptions) -> Result<Option<Vec<SocketAddr>>, Error> {
    match &options.local {
        Local::None => Ok(None),
        Local::Addr(addr) => Ok(Some(vec![*addr])),
        Local::Host(host, port) => Ok(Some(options.resolver.resolve_host(host, *port).await?)),
    }
}

async fn connect_and_establish<P, F>(
    factory: F,
    addrs: Vec<SocketAddr>,
    locals: Option<Vec<SocketAddr>>,
    options: ConnectOptions,
    host: Option<&str>,
) -> Result<(Transport, ProtocolHandle<P>), Error>
where
    P: StreamProtocol,
    F: FnOnce() -> P,
{
    #[cfg(feature = "tls")]
    if let Some(tls) = &options.tls {
        // Fail on bad options before connecting.
        tls.validate()?;
    }
    #[cfg(not(feature = "tls"))]
    let _ = host;
    let interleave = options
        .interleave
        .or(options.happy_eyeballs_delay.map(|_| 1));
    let addrs = match interleave {
        Some(n) if n > 0 => interleave_families(addrs, n),
        _ => addrs,
    };
    let stream = match connect_any(&addrs, locals.as_deref(), options.happy_eyeballs_delay).await {
        Ok(stream) => stream,
        Err(failures) => return Err(connect_error(failures)),
    };
    let peer = stream.peer_addr().ok();
    #[cfg(feature = "tls")]
    let side = match &options.tls {
        Some(tls) => Some(crate::tls::TlsSide::client(
            tls,
            crate::tls::default_server_name(host, peer),
        )?),
        None => None,
    };
    #[cfg(not(feature = "tls"))]
    let side = None;
    configure(&stream, options.nodelay, options.keepalive);
    let info = tcp_info(&stream, peer);
    let span = conn_span("tcp", Some("client"), peer);
    socket::start(factory, Arc::new(stream), info, span, side.as_ref()).await
}

/// asyncio's `_interleave_addrinfos`: `first_family_count` addresses of the
/// first family, then one of each family in turn, each family in the
/// resolver's order.
fn interleave_families(addrs: Vec<SocketAddr>, first_family_count: usize) -> Vec<SocketAddr> {
    let mut families: Vec<std::collections::VecDeque<SocketAddr>> = Vec::new();
    let mut first_v4 = None;
    for addr in addrs {
        let v4 = addr.is_ipv4();
        let first = *first_v4.get_or_insert(v4);
        let i = usize::from(v4 != first);
        if families.len() <= i {
            families.resize_with(i + 1, Default::default);
        }
        families[i].push_back(addr);
    }
    let mut out = Vec::new();
    if let Some(first) = families.first_mut() {
        let n = (first_family_count - 1).min(first.len());
        out.extend(first.drain(..n));
    }
    while families.iter().any(|f| !f.is_empty()) {
        for family in &mut families {
            out.extend(family.pop_front());
        }
    }
    out
}

/// One failure of one attempt.
#[derive(Debug)]
struct Failure {
    /// The local address whose bind failed, if that was the failure.
    bind: Option<SocketAddr>,
    error: io::Error,
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Self {
        Self { bind: None, error }
    }
}

/// The error for a `create_connection` whose every attempt failed.
fn connect_error(mut failures: Vec<(SocketAddr, Failure)>) -> Error {
    if let [(_, Failure { bind: Some(_), .. })] = failures.as_slice()
        && let Some((
            _,
            Failure {
                bind: Some(addr),
                error,
            },
        )) = failures.pop()
    {
        return Error::Bind {
            addr,
            source: error,
        };
    }
    let attempts = failures
        .into_iter()
        .map(|(addr, f)| {
            let error = match f.bind {
                None => f.error,
                Some(local) => io::Error::new(
                    f.error.kind(),
                    format!(
                        "error while attempting to bind on address {local}: {}",
                        f.error
                    ),
                ),
            };
            (addr, error)
        })
        .collect();
    Error::Connect { attempts }
}

/// Tries `addrs` in order: one after the other, or staggered by `delay`
/// (asyncio's `staggered_race`). Returns the first stream to connect, or
/// every failure in the order the attempts were made.
async fn connect_any(
    addrs: &[SocketAddr],
    locals: Option<&[SocketAddr]>,
    delay: Option<Duration>,
) -> Result<TcpStream, Vec<(SocketAddr, Failure)>> {
    let Some(delay) = delay.filter(|_| addrs.len() > 1) else {
        let mut failures = Vec::new();
        for &addr in addrs {
            match attempt(addr, locals).await {
                Ok(stream) => return Ok(stream),
                Err(errs) => failures.extend(errs.into_iter().map(|f| (addr, f))),
            }
        }
        return Err(failures);
    };

    enum Step<T> {
        Done(usize, T),
        Delay,
    }
    let mut failed: Vec<Vec<Failure>> = addrs.iter().map(|_| Vec::new()).collect();
    let mut running = vec![(0, Box::pin(attempt(addrs[0], locals)))];
    let mut started = 1;
    let mut timer = pin!(tokio::time::sleep(delay));
    loop {
        let step = poll_fn(|cx| {
            for (pos, (_, fut)) in running.iter_mut().enumerate() {
                if let Poll::Ready(res) = fut.as_mut().poll(cx) {
                    return Poll::Ready(Step::Done(pos, res));
                }
            }
            if started < addrs.len() && timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Step::Delay);
            }
            Poll::Pending
        })
        .await;
        let start_next = match step {
            // Dropping `running` closes the other attempts' sockets.
            Step::Done(_, Ok(stream)) => return Ok(stream),
            Step::Done(pos, Err(errs)) => {
                let (i, _) = running.remove(pos);
                failed[i] = errs;
                // The most recent attempt failed: start the next one now.
                i + 1 == started
            }
            Step::Delay => true,
        };
        if start_next && started < addrs.len() {
            tracing::debug!(addr = %addrs[started], "happy eyeballs: starting the next attempt");
            running.push((started, Box::pin(attempt(addrs[started], locals))));
            started += 1;
            timer.as_mut().reset(tokio::time::Instant::now() + delay);
        } else if running.is_empty() {
            break;
        }
    }
    Err(addrs
        .iter()
        .zip(failed)
        .flat_map(|(&addr, errs)| errs.into_iter().map(move |f| (addr, f)))
        .collect())
}

/// One connection attempt to `addr`, bound to the first of `locals` of its
/// family that binds (asyncio's `_connect_sock`). Fails with every error on
/// the way.
async fn attempt(
    addr: SocketAddr,
    locals: Option<&[SocketAddr]>,
) -> Result<TcpStream, Vec<Failure>> {
    let result = async {
        let mut failures = Vec::new();
        let locals: Option<Vec<SocketAddr>> = locals.map(|l| {
            l.iter()
                .copied()
                .filter(|l| l.is_ipv4() == addr.is_ipv4())
                .collect()
        });
        if let Some(locals) = &locals
            && locals.is_empty()
        {
            let family = if addr.is_ipv4() {
                "AF_INET"
            } else {
                "AF_INET6"
            };
            failures.push(Failure::from(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("no matching local address with family={family} found"),
            )));
            return Err(failures);
        }
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| vec![Failure::from(e)])?;
        if let Some(locals) = locals {
            let mut bound = false;
            for local in locals {
                match socket.bind(local) {
                    Ok(()) => {
                        bound = true;
                        break;
                    }
                    Err(error) => failures.push(Failure {
                        bind: Some(local),
                        error,
                    }),
                }
            }
            if !bound {
                return Err(failures);
            }
        }
        socket.connect(addr).await.map_err(|e| {
            failures.push(e.into());
            failures
        })
    }
    .await;
    if let Err(errs) = &result {
        for f in errs {
            tracing::debug!(%addr, error = %f.error, bind = ?f.bind, "connect attempt failed");
        }
    }
    result
}

/// Sets the socket options and wraps the stream for the connection task.
pub(crate) fn tcp_connection<P: StreamProtocol>(
    protocol: P,
    stream: TcpStream,
    peer: Option<SocketAddr>,
    nodelay: bool,
    keepalive: Option<Duration>,
) -> (Connection<P>, SocketIo<TcpStream>) {
    configure(&stream, nodelay, keepalive);
    let info = tcp_info(&stream, peer);
    socket::plain_connection(protocol, info, Arc::new(stream))
}

/// Sets `TCP_NODELAY` and keepalive as asked; failures are only logged.
pub(crate) fn configure(stream: &TcpStream, nodelay: bool, keepalive: Option<Duration>) {
    if let Err(e) = stream.set_nodelay(nodelay) {
        tracing::debug!(error = %e, "setting TCP_NODELAY failed");
    }
    if let Some(idle) = keepalive {
        let ka = TcpKeepalive::new().with_time(idle);
        if let Err(e) = SockRef::from(stream).set_tcp_keepalive(&ka) {
            tracing::debug!(error = %e, "setting SO_KEEPALIVE failed");
        }
    }
}

/// A TCP transport's info: kind `"tcp"`, addresses, half-close.
pub(crate) fn tcp_info(stream: &TcpStream, peer: Option<SocketAddr>) -> TransportInfo {
    let mut info = TransportInfo::new("tcp").with_can_write_eof(true);
    if let Some(peer) = peer {
        info = info.with_peer_addr(peer);
    }
    if let Ok(local) = stream.local_addr() {
        info = info.with_local_addr(local);
    }
    info
}
