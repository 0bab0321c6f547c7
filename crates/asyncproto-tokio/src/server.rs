//! TCP servers: `create_server` and asyncio's `Server` object.

use std::{
    collections::HashMap,
    fmt, io,
    net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr},
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use asyncproto_core::{StreamProtocol, Transport};
use socket2::{Domain, SockRef, Socket, Type};
use tokio::{
    net::{TcpListener, TcpStream, ToSocketAddrs, lookup_host},
    runtime::Handle,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::{
    conn::{conn_span, run_holding},
    error::Error,
    tcp::{Resolver, tcp_connection},
};

/// asyncio's `ACCEPT_RETRY_DELAY`: after an out-of-resources accept error
/// (EMFILE, ENFILE, ENOBUFS, ENOMEM), accepting pauses this long.
pub const ACCEPT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Options for [`create_server`], [`create_server_on`] and
/// [`create_server_with_sock`], with asyncio's defaults.
///
/// # Examples
///
/// ```
/// use asyncproto_tokio::ServerOptions;
///
/// let opts = ServerOptions::new().backlog(1024).reuse_port(true);
/// # let _ = opts;
/// ```
#[derive(Debug, Clone)]
#[must_use = "options do nothing until passed to create_server"]
pub struct ServerOptions {
    backlog: u32,
    reuse_address: bool,
    reuse_port: bool,
    nodelay: bool,
    keepalive: Option<Duration>,
    start_serving: bool,
    resolver: Resolver,
    shutdown_on: Option<(CancellationToken, Duration)>,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsServerOptions>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerOptions {
    /// asyncio's defaults: backlog 100, `SO_REUSEADDR` on, `SO_REUSEPORT`
    /// off, `TCP_NODELAY` on, no keepalive, serving at once; the system
    /// resolver; no shutdown token.
    pub fn new() -> Self {
        Self {
            backlog: 100,
            reuse_address: true,
            reuse_port: false,
            nodelay: true,
            keepalive: None,
            start_serving: true,
            resolver: Resolver::system(),
            shutdown_on: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Serves TLS (asyncio's `ssl=`, `ssl_handshake_timeout=`,
    /// `ssl_shutdown_timeout=`; feature `tls`): each accepted connection
    /// runs its handshake on its own task, then the protocol is made and
    /// gets `connection_made`. A failed or timed-out handshake is logged at
    /// DEBUG and the connection dropped; the protocol factory is not called
    /// for it. Default: no TLS.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::TlsServerOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The `listen()` backlog. Default: 100, as asyncio.
    pub fn backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// `SO_REUSEADDR`. Default: on, as asyncio on POSIX.
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.reuse_address = on;
        self
    }

    /// `SO_REUSEPORT`: several servers may bind the same port. Default: off,
    /// as asyncio.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// `TCP_NODELAY` on accepted connections. Default: on, as asyncio.
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// `SO_KEEPALIVE` on accepted connections, with this idle time. Default:
    /// off (asyncio 3.13's `keep_alive=False`).
    pub fn keepalive(mut self, idle: Option<Duration>) -> Self {
        self.keepalive = idle;
        self
    }

    /// Whether to accept connections at once. With `false` the sockets are
    /// bound but not listening (connects are refused) until
    /// [`Server::start_serving`] or [`Server::serve_forever`]. Default: true,
    /// as asyncio.
    pub fn start_serving(mut self, on: bool) -> Self {
        self.start_serving = on;
        self
    }

    /// The resolver for [`create_server_on`]'s host names (asyncio's
    /// `getaddrinfo`); IP literals skip it. Default: [`Resolver::system`].
    /// [`create_server`] resolves its `addr` with Tokio and does not use it.
    pub fn resolver(mut self, resolver: Resolver) -> Self {
        self.resolver = resolver;
        self
    }

    /// Shuts the server down with the rest of the application: when `token`
    /// is cancelled, the server runs [`Server::shutdown`]`(deadline)` — the
    /// listening sockets are closed first (new connects are refused during
    /// the drain), every connection is `close()`d, and what is left at the
    /// deadline is aborted. Await [`Server::wait_closed`] to know when that
    /// is done. The watch ends when the server has closed and drained by
    /// other means. Default: none.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use asyncproto_core::testing::Recorder;
    /// use asyncproto_tokio::{create_server, ServerOptions};
    /// use tokio_util::sync::CancellationToken;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), asyncproto_tokio::Error> {
    /// let app_shutdown = CancellationToken::new();
    /// let opts = ServerOptions::new().shutdown_on(app_shutdown.clone(), Duration::from_secs(5));
    /// let server = create_server(Recorder::default, "127.0.0.1:0", opts).await?;
    ///
    /// app_shutdown.cancel(); // e.g. on SIGTERM, with the app's other tasks
    /// server.wait_closed().await;
    /// assert!(!server.is_serving());
    /// # Ok(()) }
    /// ```
    pub fn shutdown_on(mut self, token: CancellationToken, deadline: Duration) -> Self {
        self.shutdown_on = Some((token, deadline));
        self
    }
}

/// A listening TCP server (asyncio: `Server`), returned by [`create_server`],
/// [`create_server_on`] and [`create_server_with_sock`].
///
/// Cloning gives another handle to the same server. Dropping every handle does
/// not stop it, as in asyncio: call [`close`](Self::close).
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

type Acceptor = Box<dyn Fn(&Arc<Inner>, Arc<TcpListener>) + Send + Sync>;

struct Inner {
    state: Mutex<State>,
    /// Accept loops and connection tasks.
    tracker: TaskTracker,
    closed: CancellationToken,
    conns: Mutex<HashMap<u64, Transport>>,
    /// Cancelled (and replaced) by `close_clients`/`abort_clients`: stops
    /// the TLS handshakes under way, whose connections have no transport yet.
    handshakes: Mutex<CancellationToken>,
    next_id: AtomicU64,
    backlog: u32,
    runtime: Handle,
    spawn_acceptor: Acceptor,
}

#[derive(Default)]
struct State {
    /// Bound, not yet listening.
    bound: Vec<Socket>,
    listeners: Vec<Arc<TcpListener>>,
    addrs: Vec<SocketAddr>,
    serving: bool,
    closed: bool,
    serving_forever: bool,
}

/// Creates a TCP server on `addr` that runs a protocol from `factory` for
/// each accepted connection (asyncio: `loop.create_server`).
///
/// `addr` is resolved with [`tokio::net::lookup_host`]; one listening socket
/// is bound per distinct address (so `"localhost:0"` may give an IPv4 and an
/// IPv6 socket; IPv6 sockets are `IPV6_V6ONLY`). Port 0 picks a free port,
/// the same one for every address: read it back with
/// [`Server::local_addrs`]. For several hosts, all interfaces (asyncio's
/// `host=None`) or a [`Resolver`] of your own, use [`create_server_on`].
///
/// Each connection gets `TCP_NODELAY` (by default), a tracing span and its
/// own task. A panic in `factory` is logged and drops that connection only.
///
/// # Errors
///
/// [`Error::NoAddresses`] if `addr` resolves to nothing; [`Error::Bind`] if
/// a bind fails (e.g. `AddrInUse`; every socket already made is closed);
/// [`Error::Io`] for other socket errors.
///
/// # Panics
///
/// Outside a Tokio runtime.
///
/// # Examples
///
/// ```
/// use asyncproto_core::testing::Recorder;
/// use asyncproto_tokio::{create_server, ServerOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), asyncproto_tokio::Error> {
/// let server = create_server(Recorder::default, "127.0.0.1:0", ServerOptions::new()).await?;
/// let addr = server.local_addrs()[0];
/// assert_ne!(addr.port(), 0);
/// server.close();
/// server.wait_closed().await;
/// # Ok(()) }
/// ```
pub async fn create_server<P, F>(
    factory: F,
    addr: impl ToSocketAddrs,
    options: ServerOptions,
) -> Result<Server, Error>
where
    P: StreamProtocol,
    F: Fn() -> P + Send + Sync + 'static,
{
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in lookup_host(addr).await? {
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err(Error::NoAddresses);
    }
    serve(factory, &addrs, options)
}

/// Creates a TCP server listening on `port` of every host in `hosts`
/// (asyncio: `loop.create_server(factory, host, port)` with `host` a string,
/// a list, `''` or `None`).
///
/// - Each host is an IP literal (`"127.0.0.1"`, `"::1"`) or a name resolved
///   with [`ServerOptions::resolver`]; one listening socket is bound per
///   distinct address over all hosts (`["127.0.0.1", "127.0.0.2",
///   "127.0.0.1"]` gives two).
/// - An empty `hosts` (`None`, `[]`) or a host `""` means every interface,
///   as asyncio's `None` and `''`: `0.0.0.0` and, where the system has
///   IPv6, `::` (`IPV6_V6ONLY`), so IPv4 and IPv6 clients reach one port.
/// - Port 0 picks one free port for every address.
///
/// # Errors
///
/// [`Error::NoAddresses`] if a host resolves to nothing (asyncio:
/// `getaddrinfo(…) returned empty list`); [`Error::Io`] with the resolver's
/// error; [`Error::Bind`] if a bind fails (every socket already made is
/// closed); [`Error::Io`] for other socket errors.
///
/// # Panics
///
/// Outside a Tokio runtime.
///
/// # Examples
///
/// ```
/// use asyncproto_core::testing::Recorder;
/// use asyncproto_tokio::{create_server_on, ServerOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), asyncproto_tokio::Error> {
/// let server =
///     create_server_on(Recorder::default, ["127.0.0.1", "127.0.0.2"], 0, ServerOptions::new())
///         .await?;
/// let addrs = server.local_addrs();
/// assert_eq!(addrs.len(), 2);
/// assert_eq!(addrs[0].port(), addrs[1].port());
/// server.close();
/// server.wait_closed().await;
/// # Ok(()) }
/// ```
pub async fn create_server_on<P, F, I>(
    factory: F,
    hosts: I,
    port: u16,
    options: ServerOptions,
) -> Result<Server, Error>
where
    P: StreamProtocol,
    F: Fn() -> P + Send + Sync + 'static,
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let mut hosts: Vec<String> = hosts.into_iter().map(|h| h.as_ref().to_owned()).collect();
    if hosts.is_empty() {
        hosts.push(String::new());
    }
    for host in &hosts {
        let found = if host.is_empty() {
            all_interfaces(port)
        } else {
            options.resolver.resolve_host(host, port).await?
        };
        for a in found {
            if !addrs.contains(&a) {
                addrs.push(a);
            }
        }
    }
    serve(factory, &addrs, options)
}

/// asyncio's `getaddrinfo(None, port, flags=AI_PASSIVE)`: the IPv4 and, if
/// the system has it, the IPv6 wildcard address.
fn all_interfaces(port: u16) -> Vec<SocketAddr> {
    let mut addrs = vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))];
    if Socket::new(Domain::IPV6, Type::STREAM, None).is_ok() {
        addrs.push(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)));
    } else {
        tracing::debug!("no IPv6: listening on 0.0.0.0 only");
    }
    addrs
}

/// How often binding port 0 on several addresses retries after another
/// process took the port between the first bind and the others.
const SHARED_PORT_TRIES: usize = 8;

/// Binds a socket to each address. When every address has port 0, the first
/// bind picks the port and the others take the same one.
fn bind_all(
    addrs: &[SocketAddr],
    options: &ServerOptions,
) -> Result<Vec<(Socket, SocketAddr)>, Error> {
    let shared_port = addrs.len() > 1 && addrs.iter().all(|a| a.port() == 0);
    let mut tries = 0;
    'retry: loop {
        let mut bound: Vec<(Socket, SocketAddr)> = Vec::with_capacity(addrs.len());
        for &addr in addrs {
            let mut addr = addr;
            if let (true, Some((_, first))) = (shared_port, bound.first()) {
                addr.set_port(first.port());
            }
            let socket = match bind(addr, options) {
                Ok(socket) => socket,
                Err(Error::Bind { source, .. })
                    if !bound.is_empty()
                        && shared_port
                        && source.kind() == io::ErrorKind::AddrInUse
                        && tries < SHARED_PORT_TRIES =>
                {
                    tries += 1;
                    continue 'retry;
                }
                Err(e) => return Err(e),
            };
            let local = socket
                .local_addr()?
                .as_socket()
                .ok_or_else(|| io::Error::other("bound socket has no IP address"))?;
            bound.push((socket, local));
        }
        return Ok(bound);
    }
}

/// Creates a TCP server on a socket the caller already made and bound
/// (asyncio: `loop.create_server(factory, sock=sock)`).
///
/// The server serves on that very socket (the same file descriptor): it is
/// set non-blocking and `listen(backlog)` is called on it when serving
/// starts (a [`std::net::TcpListener`] is already listening; calling
/// `listen()` again only updates the backlog). The socket options in
/// `options` that apply before `bind()` (`reuse_address`, `reuse_port`) are
/// ignored: set them on the socket yourself. The options for accepted
/// connections, `backlog`, `start_serving` and `shutdown_on` apply.
///
/// With [`ServerOptions::start_serving`]`(false)`, a listener that is
/// already listening still completes handshakes into its backlog; they are
/// accepted once serving starts.
///
/// # Errors
///
/// [`Error::Io`] if the socket cannot be made non-blocking, has no IP
/// address (e.g. a Unix socket passed as a TCP listener), is not a stream
/// socket (asyncio: `ValueError('A Stream Socket was expected')`), or if
/// `listen()` fails.
///
/// # Panics
///
/// Outside a Tokio runtime.
///
/// # Examples
///
/// ```
/// use std::net::TcpListener;
/// use asyncproto_core::testing::Recorder;
/// use asyncproto_tokio::{create_server_with_sock, ServerOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let server = create_server_with_sock(Recorder::default, listener, ServerOptions::new())?;
/// assert_eq!(server.local_addrs(), [addr]);
/// server.close();
/// server.wait_closed().await;
/// # Ok(()) }
/// ```
pub fn create_server_with_sock<P, F>(
    factory: F,
    listener: std::net::TcpListener,
    options: ServerOptions,
) -> Result<Server, Error>
where
    P: StreamProtocol,
    F: Fn() -> P + Send + Sync + 'static,
{
    let socket = Socket::from(listener);
    if socket.r#type()? != Type::STREAM {
        return Err(
            io::Error::new(io::ErrorKind::InvalidInput, "a stream socket was expected").into(),
        );
    }
    socket.set_nonblocking(true)?;
    let local = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "socket has no IP address"))?;
    build(factory, vec![(socket, local)], options)
}

/// Binds `addrs` and builds the server.
fn serve<P, F>(factory: F, addrs: &[SocketAddr], options: ServerOptions) -> Result<Server, Error>
where
    P: StreamProtocol,
    F: Fn() -> P + Send + Sync + 'static,
{
    if addrs.is_empty() {
        return Err(Error::NoAddresses);
    }
    let bound = bind_all(addrs, &options)?;
    build(factory, bound, options)
}

/// Builds the server on bound (maybe listening) non-blocking sockets.
fn build<P, F>(
    factory: F,
    bound: Vec<(Socket, SocketAddr)>,
    options: ServerOptions,
) -> Result<Server, Error>
where
    P: StreamProtocol,
    F: Fn() -> P + Send + Sync + 'static,
{
    let mut state = State::default();
    for (socket, local) in bound {
        state.addrs.push(local);
        state.bound.push(socket);
    }
    let factory = Arc::new(factory);
    let conn_options = ConnOptions {
        nodelay: options.nodelay,
        keepalive: options.keepalive,
        #[cfg(feature = "tls")]
        tls: options
            .tls
            .as_ref()
            .map(crate::tls::TlsSide::server)
            .transpose()?
            .map(Arc::new),
    };
    let spawn_acceptor: Acceptor = Box::new(move |inner, listener| {
        let fut = accept_loop(
            Arc::clone(inner),
            listener,
            Arc::clone(&factory),
            conn_options.clone(),
        );
        inner.tracker.spawn_on(fut, &inner.runtime);
    });
    let server = Server {
        inner: Arc::new(Inner {
            state: Mutex::new(state),
            tracker: TaskTracker::new(),
            closed: CancellationToken::new(),
            conns: Mutex::new(HashMap::new()),
            handshakes: Mutex::new(CancellationToken::new()),
            next_id: AtomicU64::new(0),
            backlog: options.backlog,
            runtime: Handle::current(),
            spawn_acceptor,
        }),
    };
    if options.start_serving {
        server.start_serving()?;
    }
    if let Some((token, deadline)) = options.shutdown_on {
        let watched = server.clone();
        server.inner.runtime.spawn(async move {
            tokio::select! {
                () = token.cancelled() => {
                    tracing::debug!("shutdown token cancelled; shutting the server down");
                    watched.shutdown(deadline).await;
                }
                () = watched.wait_closed() => {}
            }
        });
    }
    Ok(server)
}

fn bind(addr: SocketAddr, options: &ServerOptions) -> Result<Socket, Error> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(options.reuse_address)?;
    #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
    if options.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|source| Error::Bind { addr, source })?;
    Ok(socket)
}

impl Server {
    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn conns(&self) -> Vec<Transport> {
        let conns = self.inner.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns.values().cloned().collect()
    }

    /// Starts accepting if not already (asyncio: `start_serving()`).
    /// Idempotent.
    ///
    /// # Errors
    ///
    /// [`Error::ServerClosed`] after [`close`](Self::close); [`Error::Io`] if
    /// `listen()` fails.
    pub fn start_serving(&self) -> Result<(), Error> {
        let mut st = self.state();
        if st.closed {
            return Err(Error::ServerClosed);
        }
        if st.serving {
            return Ok(());
        }
        let _guard = self.inner.runtime.enter();
        for socket in std::mem::take(&mut st.bound) {
            let backlog = i32::try_from(self.inner.backlog).unwrap_or(i32::MAX);
            socket.listen(backlog)?;
            let listener = Arc::new(TcpListener::from_std(socket.into())?);
            st.listeners.push(Arc::clone(&listener));
            (self.inner.spawn_acceptor)(&self.inner, listener);
        }
        st.serving = true;
        Ok(())
    }

    /// Whether the server is accepting connections.
    pub fn is_serving(&self) -> bool {
        self.state().serving
    }

    /// The addresses the server listens on (asyncio: `[s.getsockname() for
    /// s in server.sockets]`); empty once closed.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.state().addrs.clone()
    }

    /// Stops accepting: the listening sockets are closed at once (new
    /// connects are refused); accepted connections stay open, as asyncio.
    /// Idempotent.
    pub fn close(&self) {
        let listeners = {
            let mut st = self.state();
            if st.closed {
                return;
            }
            st.closed = true;
            st.serving = false;
            st.addrs.clear();
            st.bound.clear();
            std::mem::take(&mut st.listeners)
        };
        // Cancel first: the accept loops then take the error the shutdown
        // below causes (EINVAL) as the close it is, not as an accept failure.
        self.inner.closed.cancel();
        for l in &listeners {
            // Takes the socket out of LISTEN now, so a connect made right
            // after close() is refused even before the accept task has woken
            // up and dropped its listener.
            let _ = SockRef::from(&**l).shutdown(Shutdown::Both);
        }
        self.inner.tracker.close();
        tracing::debug!("server closed");
    }

    /// Waits until the server is closed **and** every connection it accepted
    /// has ended (asyncio ≥ 3.12.1). Returns at once if both already hold.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_closed(&self) {
        self.inner.closed.cancelled().await;
        self.inner.tracker.wait().await;
    }

    /// Accepts connections until the server is closed (asyncio:
    /// `serve_forever()`), starting to serve if needed. Dropping the future
    /// closes the server, as cancelling it does in asyncio.
    ///
    /// # Errors
    ///
    /// [`Error::ServerClosed`] if the server is closed;
    /// [`Error::AlreadyServing`] if another `serve_forever` is running.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the server (accepted connections stay).
    pub async fn serve_forever(&self) -> Result<(), Error> {
        {
            let mut st = self.state();
            if st.closed {
                return Err(Error::ServerClosed);
            }
            if st.serving_forever {
                return Err(Error::AlreadyServing);
            }
            st.serving_forever = true;
        }
        struct CloseOnDrop<'a>(&'a Server);
        impl Drop for CloseOnDrop<'_> {
            fn drop(&mut self) {
                self.0.state().serving_forever = false;
                self.0.close();
            }
        }
        let _guard = CloseOnDrop(self);
        self.start_serving()?;
        self.inner.closed.cancelled().await;
        Ok(())
    }

    /// Calls `close()` on every connection the server accepted: each flushes
    /// and ends with `connection_lost(None)` (asyncio 3.13).
    pub fn close_clients(&self) {
        self.cancel_handshakes();
        for t in self.conns() {
            t.close();
        }
    }

    /// Drops the connections still in their TLS handshake.
    fn cancel_handshakes(&self) {
        let mut token = self
            .inner
            .handshakes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *token).cancel();
    }

    /// Calls `abort()` on every connection the server accepted (asyncio
    /// 3.13).
    pub fn abort_clients(&self) {
        self.cancel_handshakes();
        for t in self.conns() {
            t.abort();
        }
    }

    /// How many accepted connections' tasks are still running. A connection
    /// leaves the count when its task ends, just after its
    /// `connection_lost` has returned.
    pub fn active_connections(&self) -> usize {
        self.inner
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Graceful shutdown with a deadline: stop accepting, `close()` every
    /// connection (each flushes what it has buffered), wait up to `deadline`
    /// for them to end, then `abort()` what is left and wait for that.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe; the server is closed as soon as this is first polled.
    pub async fn shutdown(&self, deadline: Duration) {
        self.close();
        self.close_clients();
        if tokio::time::timeout(deadline, self.wait_closed())
            .await
            .is_err()
        {
            tracing::debug!(
                left = self.active_connections(),
                "shutdown deadline passed; aborting"
            );
            self.abort_clients();
            self.wait_closed().await;
        }
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state();
        f.debug_struct("Server")
            .field("addrs", &st.addrs)
            .field("serving", &st.serving)
            .field("closed", &st.closed)
            .finish_non_exhaustive()
    }
}

/// Whether an accept error means the process or system is out of resources
/// (asyncio backs off `ACCEPT_RETRY_DELAY` for these).
fn out_of_resources(e: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)
    )
}

async fn accept_loop<P, F>(
    inner: Arc<Inner>,
    listener: Arc<TcpListener>,
    factory: Arc<F>,
    options: ConnOptions,
) where
    P: StreamProtocol,
    F: Fn() -> P + Send + Sync + 'static,
{
    loop {
        let res = tokio::select! {
            biased;
            () = inner.closed.cancelled() => return,
            res = listener.accept() => res,
        };
        match res {
            Ok((stream, peer)) => spawn_connection(&inner, &factory, stream, peer, &options),
            Err(_) if inner.closed.is_cancelled() => return,
            Err(e) if out_of_resources(&e) => {
                // asyncio: "socket.accept() out of system resource"
                tracing::error!(error = %e, "accept failed: out of system resources; retrying in 1 s");
                tokio::select! {
                    () = inner.closed.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_RETRY_DELAY) => {}
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                ) => {}
            Err(e) => {
                // Unknown errors keep the listener (asyncio) but must not spin.
                tracing::error!(error = %e, "accept failed");
                tokio::select! {
                    () = inner.closed.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

/// What every accepted connection is set up with.
#[derive(Clone)]
struct ConnOptions {
    nodelay: bool,
    keepalive: Option<Duration>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<crate::tls::TlsSide>>,
}

fn spawn_connection<P, F>(
    inner: &Arc<Inner>,
    factory: &Arc<F>,
    stream: TcpStream,
    peer: SocketAddr,
    options: &ConnOptions,
) where
    P: StreamProtocol,
    F: Fn() -> P + Send + Sync + 'static,
{
    let span = conn_span("tcp", Some("server"), Some(peer));
    #[cfg(feature = "tls")]
    if let Some(side) = &options.tls {
        let fut = tls_connection(
            Arc::clone(inner),
            Arc::clone(factory),
            stream,
            peer,
            options.clone(),
            Arc::clone(side),
        );
        inner.tracker.spawn_on(fut.instrument(span), &inner.runtime);
        return;
    }
    let Ok(protocol) = span.in_scope(|| catch_unwind(AssertUnwindSafe(&**factory))) else {
        span.in_scope(|| tracing::error!("protocol factory panicked; connection dropped"));
        return;
    };
    let (conn, io) = tcp_connection(
        protocol,
        stream,
        Some(peer),
        options.nodelay,
        options.keepalive,
    );
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let registry = Registered::new(Arc::clone(inner), id, conn.transport().clone());
    // connection_made runs on the connection's task: drive starts a new
    // connection.
    inner.tracker.spawn_on(
        run_holding(conn, io, registry).instrument(span),
        &inner.runtime,
    );
}

/// A TLS server connection's task: the handshake (dropped on failure, on
/// timeout, or by `close_clients`/`abort_clients`), then the protocol.
#[cfg(feature = "tls")]
async fn tls_connection<P, F>(
    inner: Arc<Inner>,
    factory: Arc<F>,
    stream: TcpStream,
    peer: SocketAddr,
    options: ConnOptions,
    side: Arc<crate::tls::TlsSide>,
) where
    P: StreamProtocol,
    F: Fn() -> P + Send + Sync + 'static,
{
    crate::tcp::configure(&stream, options.nodelay, options.keepalive);
    let info = crate::tcp::tcp_info(&stream, Some(peer));
    let sock = Arc::new(stream);
    let cancel = inner
        .handshakes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let res = tokio::select! {
        () = cancel.cancelled() => {
            tracing::debug!("TLS handshake cancelled by close_clients/abort_clients");
            return;
        }
        res = crate::tls::handshake(Arc::clone(&sock), None, &side) => res,
    };
    let session = match res {
        Ok(session) => session,
        Err(e) => {
            let e = Error::from(e);
            tracing::debug!(error = %e, source = ?std::error::Error::source(&e), "TLS handshake failed; connection dropped");
            return;
        }
    };
    let Ok(protocol) = catch_unwind(AssertUnwindSafe(&*factory)) else {
        tracing::error!("protocol factory panicked; connection dropped");
        return;
    };
    let (conn, io) = crate::tls::connection(protocol, info, sock, session);
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let registry = Registered::new(Arc::clone(&inner), id, conn.transport().clone());
    drop(run_holding(conn, io, registry).await);
}

/// Keeps a connection in the server's registry while its task lives.
struct Registered {
    inner: Arc<Inner>,
    id: u64,
}

impl Registered {
    fn new(inner: Arc<Inner>, id: u64, transport: Transport) -> Self {
        inner
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, transport);
        Self { inner, id }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.inner
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}
