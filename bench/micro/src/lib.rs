//! Criterion micro-benchmarks of `asyncproto-core`'s hot paths; the code is
//! in `benches/hot_paths.rs` (`cargo bench -p asyncproto-micro`). This
//! library is empty: it only gives the package a target.
#![deny(missing_docs)]
