//! `WriteBuffer` against a plain model: a queue of chunks, a byte count, the
//! water marks and the paused flag, with asyncio's rules
//! (`transports._FlowControlMixin`) written out directly.

#![no_main]

use std::{collections::VecDeque, io::IoSlice};

use arbitrary::Arbitrary;
use asyncproto_core::{
    Bytes, Error,
    flow::{DEFAULT_HIGH_WATER, FlowEvent, WriteBuffer},
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Op {
    /// Push this many bytes (small sizes keep the marks interesting).
    Push {
        len: u16,
        fill: u8,
    },
    /// Push an empty chunk (ignored).
    PushEmpty,
    /// Consume this many bytes (clamped by the buffer).
    Consume(u32),
    /// Consume everything and more.
    ConsumeHuge(usize),
    /// Set the marks; values kept small so they meet the buffer sizes.
    SetLimits {
        high: Option<u16>,
        low: Option<u16>,
    },
    /// Set the marks with any `usize` (overflow in the derivation).
    SetLimitsWide {
        high: Option<usize>,
        low: Option<usize>,
    },
    CheckPause,
    Clear,
    /// Fill this many `IoSlice` slots.
    Vectored(u8),
}

#[derive(Debug, Default)]
struct Model {
    chunks: VecDeque<Vec<u8>>,
    len: usize,
    high: usize,
    low: usize,
    paused: bool,
}

impl Model {
    fn new() -> Self {
        Self {
            high: DEFAULT_HIGH_WATER,
            low: DEFAULT_HIGH_WATER / 4,
            ..Self::default()
        }
    }

    fn push(&mut self, data: Vec<u8>) {
        if !data.is_empty() {
            self.len += data.len();
            self.chunks.push_back(data);
        }
    }

    fn consume(&mut self, n: usize) -> Option<FlowEvent> {
        let mut n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let front = self.chunks.front_mut().expect("len counts chunks");
            if front.len() <= n {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                front.drain(..n);
                n = 0;
            }
        }
        if self.paused && self.len <= self.low {
            self.paused = false;
            Some(FlowEvent::Resume)
        } else {
            None
        }
    }

    fn check_pause(&mut self) -> Option<FlowEvent> {
        if !self.paused && self.len > self.high {
            self.paused = true;
            Some(FlowEvent::Pause)
        } else {
            None
        }
    }

    fn set_limits(
        &mut self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), (usize, usize)> {
        let (h, l) = match (high, low) {
            (None, None) => (DEFAULT_HIGH_WATER, DEFAULT_HIGH_WATER / 4),
            (Some(h), None) => (h, h / 4),
            (None, Some(l)) => (l.saturating_mul(4), l),
            (Some(h), Some(l)) => (h, l),
        };
        if h < l {
            return Err((h, l));
        }
        self.high = h;
        self.low = l;
        Ok(())
    }
}

fn set_limits(buf: &mut WriteBuffer, model: &mut Model, high: Option<usize>, low: Option<usize>) {
    let before = buf.limits();
    match (buf.set_limits(high, low), model.set_limits(high, low)) {
        (Ok(()), Ok(())) => {}
        (Err(Error::InvalidLimits { high: h, low: l }), Err((mh, ml))) => {
            assert_eq!((h, l), (mh, ml), "error reports the derived marks");
            assert_eq!(buf.limits(), before, "a rejected call changes nothing");
        }
        (got, want) => panic!("set_limits({high:?}, {low:?}): got {got:?}, model {want:?}"),
    }
    // Neither a pause nor a resume comes from setting the marks.
    assert_eq!(buf.is_paused(), model.paused);
}

fuzz_target!(|ops: Vec<Op>| {
    let mut buf = WriteBuffer::new();
    let mut model = Model::new();
    // Distinct contents per push, so reordering or duplication shows.
    let mut counter: u8 = 0;
    for op in ops {
        match op {
            Op::Push { len, fill } => {
                let data: Vec<u8> = (0..len)
                    .map(|i| fill.wrapping_add(counter).wrapping_add(i as u8))
                    .collect();
                counter = counter.wrapping_add(1);
                buf.push(Bytes::from(data.clone()));
                model.push(data);
            }
            Op::PushEmpty => {
                buf.push(Bytes::new());
            }
            Op::Consume(n) => {
                assert_eq!(buf.consume(n as usize), model.consume(n as usize));
            }
            Op::ConsumeHuge(n) => {
                let n = n.max(model.len);
                assert_eq!(buf.consume(n), model.consume(n));
            }
            Op::SetLimits { high, low } => set_limits(
                &mut buf,
                &mut model,
                high.map(usize::from),
                low.map(usize::from),
            ),
            Op::SetLimitsWide { high, low } => set_limits(&mut buf, &mut model, high, low),
            Op::CheckPause => {
                assert_eq!(buf.check_pause(), model.check_pause());
            }
            Op::Clear => {
                buf.clear();
                model.chunks.clear();
                model.len = 0;
                // No flow event, and the paused flag is left as it was.
            }
            Op::Vectored(slots) => {
                let mut dst = vec![IoSlice::new(&[]); usize::from(slots)];
                let n = buf.chunks_vectored(&mut dst);
                assert_eq!(n, dst.len().min(model.chunks.len()));
                for (slice, chunk) in dst[..n].iter().zip(&model.chunks) {
                    assert!(!slice.is_empty(), "no empty slice is handed out");
                    assert_eq!(&**slice, chunk.as_slice());
                }
            }
        }
        assert_eq!(buf.len(), model.len);
        assert_eq!(buf.is_empty(), model.len == 0);
        assert_eq!(buf.is_paused(), model.paused);
        assert_eq!(buf.limits(), (model.low, model.high));
        assert!(model.low <= model.high);
    }
});
