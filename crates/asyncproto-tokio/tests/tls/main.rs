//! TLS transports on real loopback sockets (feature `tls`).
//!
//! Certificates come from `asyncproto_testkit::tls::TestPki`, generated per
//! test. Peers we need to misbehave on purpose (no `close_notify`, garbage,
//! silence) are raw `tokio-rustls` streams or plain sockets. Ports of CPython
//! and uvloop TLS tests keep their upstream names under `cpython::` and
//! `uvloop::` (see `cpython-test-port.md`, section TLS).

#[allow(
    dead_code,
    unused_macros,
    unused_imports,
    reason = "shared with the `it` suite; each suite uses a part"
)]
#[path = "../it/support.rs"]
mod support;

mod basics;
mod cpython;
mod flow;
mod peers;
mod upgrade;
mod uvloop;
mod verify;
