//! Helpers shared by the example programs (included with `#[path]`).

use std::{io::Write, net::SocketAddr};

mod pyfmt;
pub(crate) mod tls;
#[allow(unused_imports, reason = "each example uses a subset of the helpers")]
pub(crate) use pyfmt::*;

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
