//! The synchronisation primitives behind the [`Transport`](crate::Transport)
//! handle: std's, or loom's under `--cfg loom`, so that `tests/loom.rs` can
//! model-check the handle's locking and wake-ups.

#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};
