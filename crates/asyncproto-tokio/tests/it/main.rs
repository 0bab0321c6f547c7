//! Integration tests of the Tokio backend on real loopback sockets.
//!
//! Every test binds `127.0.0.1:0`, runs inside `support::within`, and
//! synchronises on the protocol's callbacks (`support::Probe`), never on
//! sleeps. Ports of CPython and uvloop tests keep their upstream names under
//! `cpython::` and `uvloop::` (see `cpython-test-port.md`).

mod buffered;
mod client;
mod cpython;
mod faults;
mod flow;
mod handle;
mod happy_eyeballs;
mod lifecycle;
mod panics;
mod read_buffer;
mod server;
mod shutdown_token;
mod sockets;
mod stress;
mod support;
mod switch;
mod uvloop;
