//! Interop tests: the example programs driven from outside, by real peers —
//! stock CPython asyncio (the spec's own Python examples), Python's `ssl`,
//! `openssl s_client` and raw sockets.
//!
//! These follow `EXAMPLES.md`'s command-line contract: `--addr`, the
//! `listening on HOST:PORT` readiness line, exit 0 on SIGTERM within 5 s.

mod echo_server;
mod spec_examples;
mod support;
mod tls;
