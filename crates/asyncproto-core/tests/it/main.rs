//! asyncproto-core's integration tests: CPython's and uvloop's transport
//! tests ported onto the in-memory transport (`cpython`, `uvloop`, named as
//! upstream so one grep finds both sides), tests of behaviour no upstream
//! test pins (`gaps`, named by behaviour), and property tests of the whole
//! connection against a model (`model`).
//!
//! The rows come from `cpython-test-port.md` ("Core state machine" and "Flow
//! control"); rows that need real sockets live in asyncproto-tokio.

mod buffered;
mod cpython;
mod gaps;
mod model;
mod support;
mod switch;
mod upgrade;
mod uvloop;
