//! Helpers shared by the example programs (included with `#[path]`).

use std::{io::Write, net::SocketAddr};

/// Python's `repr()` of a `str`, enough for the spec's `{!r}` formats:
/// single quotes unless the text contains `'` and no `"`, with `\\`, the
/// quote, `\n`, `\r`, `\t` and other control characters escaped.
pub(crate) fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `str()` of a socket address tuple, as `get_extra_info('peername')`
/// prints: `('127.0.0.1', 8888)` or `('::1', 8888, 0, 0)`.
pub(crate) fn py_addr(addr: Option<SocketAddr>) -> String {
    match addr {
        None => "None".to_owned(),
        Some(SocketAddr::V4(a)) => format!("('{}', {})", a.ip(), a.port()),
        Some(SocketAddr::V6(a)) => {
            format!(
                "('{}', {}, {}, {})",
                a.ip(),
                a.port(),
                a.flowinfo(),
                a.scope_id()
            )
        }
    }
}

/// Logs to stderr (stdout is reserved for the programs' contract output),
/// filtered by `RUST_LOG` (default `info`).
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Prints the readiness line `listening on HOST:PORT` as the first line of
/// stdout and flushes it.
pub(crate) fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    // If stdout is gone there is nobody to tell; keep serving.
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}

/// SIGINT and SIGTERM handlers, installed before the readiness line is
/// printed so that a signal sent right after it is never fatal.
pub(crate) struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Installs the handlers.
    ///
    /// # Panics
    ///
    /// If the signal handlers cannot be installed (outside a Tokio runtime).
    pub(crate) fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Self {
            term: signal(SignalKind::terminate()).expect("install SIGTERM handler"),
            int: signal(SignalKind::interrupt()).expect("install SIGINT handler"),
        }
    }

    /// Resolves on SIGINT or SIGTERM.
    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
