//! Criterion micro-benchmarks of `asyncproto-core`'s hot paths (issue #4):
//!
//! - `data_received/64B`: one 64-byte chunk fed through
//!   [`MemoryTransport`] (state machine, `data_received` dispatch, the
//!   protocol's `write`, flush through the in-memory write side in
//!   [`WriteMode::Accept`]);
//! - `write_buffer/push16x64_drain`: 16 pushes of 64 bytes, one
//!   `chunks_vectored` and one `consume` of everything (a reply made of many
//!   small writes, drained by one `writev`);
//! - `check_pause`: the flow-control check run after every callback.
//!
//! `cargo bench -p asyncproto-micro`; not run in CI.

use std::{hint::black_box, io::IoSlice};

use asyncproto_core::{
    BaseProtocol, Bytes, Protocol, Transport,
    flow::{MAX_IOVECS, WriteBuffer},
    testing::{MemoryTransport, WriteMode},
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Writes back every chunk it receives.
#[derive(Default)]
struct Echo {
    transport: Option<Transport>,
}

impl BaseProtocol for Echo {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }
}

impl Protocol for Echo {
    fn data_received(&mut self, data: Bytes) {
        if let Some(t) = &self.transport {
            let _ = t.write(data);
        }
    }
}

static CHUNK: [u8; 64] = [0x5a; 64];

fn data_received(c: &mut Criterion) {
    let mut g = c.benchmark_group("data_received");
    g.throughput(Throughput::Elements(1));
    g.bench_function("64B", |b| {
        let mut t = MemoryTransport::new(Echo::default());
        t.set_write_mode(WriteMode::Accept);
        b.iter(|| {
            t.feed(Bytes::from_static(&CHUNK));
            black_box(t.take_written());
        });
    });
    g.finish();
}

fn write_buffer(c: &mut Criterion) {
    let mut g = c.benchmark_group("write_buffer");
    g.throughput(Throughput::Elements(16));
    g.bench_function("push16x64_drain", |b| {
        let mut buf = WriteBuffer::new();
        b.iter(|| {
            for _ in 0..16 {
                buf.push(Bytes::from_static(&CHUNK));
            }
            let mut slots = [IoSlice::new(&[]); MAX_IOVECS];
            let n = buf.chunks_vectored(&mut slots);
            let total: usize = slots[..n].iter().map(|s| s.len()).sum();
            black_box(&slots[..n]);
            black_box(buf.consume(total));
        });
    });
    g.finish();
}

fn check_pause(c: &mut Criterion) {
    c.bench_function("check_pause", |b| {
        let mut buf = WriteBuffer::new();
        buf.push(Bytes::from_static(&CHUNK));
        b.iter(|| black_box(black_box(&mut buf).check_pause()));
    });
}

criterion_group!(benches, data_received, write_buffer, check_pause);
criterion_main!(benches);
