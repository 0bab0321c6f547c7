//! Write flow control: the write buffer and its high/low water marks.
//!
//! One type, [`WriteBuffer`], does the accounting for every transport. It
//! never calls a protocol itself: it reports *edges* ([`FlowEvent`]) that the
//! connection state machine delivers as `pause_writing` / `resume_writing`.
//!
//! The rules are asyncio's (`transports._FlowControlMixin`):
//!
//! - defaults: high = 64 KiB, low = high / 4;
//! - a pause edge when the buffered size is **strictly over** high;
//! - a resume edge, only while paused, when the size falls to low **or below**;
//! - each edge once: never two pauses without a resume between them.

use std::{collections::VecDeque, io::IoSlice};

use bytes::{Buf, Bytes, BytesMut};

use crate::error::Error;

/// asyncio's default high-water mark: 64 KiB.
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// At most this many slices are handed to one vectored write (Linux's
/// `UIO_MAXIOV` is 1024; 64 keeps the `iovec` array on the stack).
pub const MAX_IOVECS: usize = 64;

/// Writes of at most this many bytes that follow other buffered bytes are
/// copied into one shared tail chunk instead of being queued as a chunk of
/// their own (asyncio and uvloop append every write to one `bytearray`):
/// a reply made of many small writes costs one slice of the vectored write
/// and no per-write queue entry.
pub const COALESCE_MAX: usize = 512;

/// The first allocation of the tail chunk that small writes are copied into.
const TAIL_CAPACITY: usize = 1024;

/// A flow-control edge, delivered to the protocol as the callback of the same
/// name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowEvent {
    /// The buffer went strictly over the high-water mark: `pause_writing()`.
    Pause,
    /// The buffer fell to the low-water mark or below while paused:
    /// `resume_writing()`.
    Resume,
}

/// A queue of outgoing bytes with asyncio's water-mark flow control.
///
/// Chunks are kept as the [`Bytes`] the caller wrote (no copy) and drained
/// with vectored writes. A small write (at most [`COALESCE_MAX`] bytes)
/// that follows other buffered bytes is copied into a tail chunk instead,
/// so that many small writes are one slice of the vectored write; the tail's
/// allocation is released once the buffer has drained, so an idle
/// connection holds none.
///
/// # Examples
///
/// ```
/// use asyncproto_core::flow::{FlowEvent, WriteBuffer};
///
/// let mut buf = WriteBuffer::new();
/// buf.set_limits(Some(8), None)?; // high 8, low 2
/// buf.push("12345678".into());
/// assert_eq!(buf.check_pause(), None); // exactly high: no pause
/// buf.push("9".into());
/// assert_eq!(buf.check_pause(), Some(FlowEvent::Pause));
/// assert_eq!(buf.consume(6), None); // 3 left: still over low
/// assert_eq!(buf.consume(1), Some(FlowEvent::Resume)); // 2 == low
/// # Ok::<(), asyncproto_core::Error>(())
/// ```
#[derive(Debug)]
pub struct WriteBuffer {
    chunks: VecDeque<Bytes>,
    /// Small writes, copied; logically after every chunk in `chunks`.
    tail: BytesMut,
    len: usize,
    high: usize,
    low: usize,
    paused: bool,
}

impl Default for WriteBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl WriteBuffer {
    /// An empty buffer with asyncio's default limits (high 64 KiB, low 16 KiB).
    pub fn new() -> Self {
        Self {
            chunks: VecDeque::new(),
            tail: BytesMut::new(),
            len: 0,
            high: DEFAULT_HIGH_WATER,
            low: DEFAULT_HIGH_WATER / 4,
            paused: false,
        }
    }

    /// Appends `data`. Empty chunks are ignored.
    ///
    /// This does not check the high-water mark: the state machine calls
    /// [`check_pause`](Self::check_pause) once the writing callback has
    /// returned (see the crate docs on why callbacks never re-enter).
    #[inline]
    pub fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let buffered = self.len;
        self.len += data.len();
        if data.len() <= COALESCE_MAX && buffered > 0 {
            if self.tail.capacity() == 0 {
                self.tail.reserve(TAIL_CAPACITY);
            }
            self.tail.extend_from_slice(&data);
            return;
        }
        if !self.tail.is_empty() {
            // Keep the order: what was copied goes before this chunk.
            self.chunks.push_back(self.tail.split().freeze());
        }
        self.chunks.push_back(data);
    }

    /// Returns [`FlowEvent::Pause`] if the size is strictly over the high mark
    /// and no pause is outstanding; the buffer is then paused.
    // asyncio: transports._FlowControlMixin._maybe_pause_protocol
    #[inline]
    pub fn check_pause(&mut self) -> Option<FlowEvent> {
        if !self.paused && self.len > self.high {
            self.paused = true;
            Some(FlowEvent::Pause)
        } else {
            None
        }
    }

    /// Removes `n` bytes from the front (they were written). Returns
    /// [`FlowEvent::Resume`] if the buffer was paused and is now at or below
    /// the low mark.
    ///
    /// `n` larger than the buffered size is clamped.
    // asyncio: transports._FlowControlMixin._maybe_resume_protocol
    #[inline]
    pub fn consume(&mut self, mut n: usize) -> Option<FlowEvent> {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                self.tail.advance(n);
                break;
            };
            if front.len() <= n {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
        if self.len == 0 && self.tail.capacity() != 0 {
            // Drained: an idle connection keeps no tail allocation.
            self.tail = BytesMut::new();
        }
        self.check_resume()
    }

    #[inline]
    fn check_resume(&mut self) -> Option<FlowEvent> {
        if self.paused && self.len <= self.low {
            self.paused = false;
            Some(FlowEvent::Resume)
        } else {
            None
        }
    }

    /// Sets the water marks with asyncio's defaults and validation.
    ///
    /// - neither given: high = 64 KiB, low = high / 4;
    /// - only `high`: low = high / 4 (so high 0 gives low 0);
    /// - only `low`: high = 4 × low.
    ///
    /// Like asyncio, this never produces a resume: raising the limits while
    /// paused stays paused until the next drain. Call
    /// [`check_pause`](Self::check_pause) afterwards for the pause re-check.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidLimits`] if `high < low`; nothing is changed then.
    // asyncio: transports._FlowControlMixin._set_write_buffer_limits
    pub fn set_limits(&mut self, high: Option<usize>, low: Option<usize>) -> Result<(), Error> {
        let (high, low) = match (high, low) {
            (None, None) => (DEFAULT_HIGH_WATER, DEFAULT_HIGH_WATER / 4),
            (Some(high), None) => (high, high / 4),
            (None, Some(low)) => (low.saturating_mul(4), low),
            (Some(high), Some(low)) => (high, low),
        };
        if high < low {
            return Err(Error::InvalidLimits { high, low });
        }
        self.high = high;
        self.low = low;
        Ok(())
    }

    /// The limits as asyncio returns them: **`(low, high)`**.
    pub fn limits(&self) -> (usize, usize) {
        (self.low, self.high)
    }

    /// Buffered bytes not yet written.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is buffered.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether a pause edge is outstanding (no resume since).
    #[inline]
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Discards everything buffered (abort). No flow event follows.
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.tail = BytesMut::new();
        self.len = 0;
    }

    /// How many chunks are buffered (each write of non-empty data is one,
    /// until it is fully consumed, except that coalesced small writes are
    /// one together): the number of slices
    /// [`chunks_vectored`](Self::chunks_vectored) can fill.
    #[inline]
    pub fn chunk_count(&self) -> usize {
        self.chunks.len() + usize::from(!self.tail.is_empty())
    }

    /// Fills `dst` with slices of the buffered chunks, front first, and
    /// returns how many were filled.
    pub fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        self.chunks_vectored_max(dst, usize::MAX)
    }

    /// As [`chunks_vectored`](Self::chunks_vectored), but the slices hold at
    /// most `max` bytes in total (the last one is cut short).
    #[inline]
    pub fn chunks_vectored_max<'a>(&'a self, dst: &mut [IoSlice<'a>], max: usize) -> usize {
        let mut n = 0;
        let mut left = max;
        let chunks = self.chunks.iter().map(|c| &c[..]);
        let tail = Some(&self.tail[..]).filter(|t| !t.is_empty());
        for (slot, chunk) in dst.iter_mut().zip(chunks.chain(tail)) {
            if left == 0 {
                break;
            }
            let take = chunk.len().min(left);
            *slot = IoSlice::new(&chunk[..take]);
            left -= take;
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(high: usize, low: usize) -> WriteBuffer {
        let mut b = WriteBuffer::new();
        b.set_limits(Some(high), Some(low)).unwrap();
        b
    }

    #[test]
    fn defaults_are_asyncio_s() {
        assert_eq!(WriteBuffer::new().limits(), (16 * 1024, 64 * 1024));
    }

    #[test]
    fn limits_validation_and_derivation() {
        let mut b = WriteBuffer::new();
        b.set_limits(Some(0), None).unwrap();
        assert_eq!(b.limits(), (0, 0));
        b.set_limits(None, Some(16385)).unwrap();
        assert_eq!(b.limits(), (16385, 65540));
        b.set_limits(Some(1000), None).unwrap();
        assert_eq!(b.limits(), (250, 1000));
        let err = b.set_limits(Some(0), Some(1)).unwrap_err();
        assert!(matches!(err, Error::InvalidLimits { high: 0, low: 1 }));
        assert_eq!(b.limits(), (250, 1000), "a rejected call changes nothing");
        b.set_limits(None, None).unwrap();
        assert_eq!(b.limits(), (16384, 65536));
    }

    #[test]
    fn exactly_high_does_not_pause_one_more_does() {
        let mut b = buf(10, 4);
        b.push(Bytes::from(vec![0; 10]));
        assert_eq!(b.check_pause(), None);
        b.push(Bytes::from_static(b"x"));
        assert_eq!(b.check_pause(), Some(FlowEvent::Pause));
        assert_eq!(b.check_pause(), None, "one pause per edge");
    }

    #[test]
    fn resume_at_exactly_low() {
        let mut b = buf(10, 4);
        b.push(Bytes::from(vec![0; 11]));
        assert_eq!(b.check_pause(), Some(FlowEvent::Pause));
        assert_eq!(b.consume(6), None, "5 left > low 4");
        assert_eq!(b.consume(1), Some(FlowEvent::Resume), "4 left == low");
        assert_eq!(b.consume(4), None, "no second resume");
    }

    #[test]
    fn high_zero_pauses_on_any_byte() {
        let mut b = buf(0, 0);
        b.push(Bytes::from_static(b"a"));
        assert_eq!(b.check_pause(), Some(FlowEvent::Pause));
        assert_eq!(b.consume(1), Some(FlowEvent::Resume));
    }

    #[test]
    fn raising_limits_while_paused_does_not_resume() {
        let mut b = buf(10, 4);
        b.push(Bytes::from(vec![0; 11]));
        assert_eq!(b.check_pause(), Some(FlowEvent::Pause));
        b.set_limits(Some(100), Some(50)).unwrap();
        assert!(b.is_paused());
        assert_eq!(b.consume(1), Some(FlowEvent::Resume), "next drain resumes");
    }

    #[test]
    fn consume_across_chunks_and_vectored_view() {
        let mut b = WriteBuffer::new();
        b.push(Bytes::from_static(b"ab"));
        b.push(Bytes::new());
        b.push(Bytes::from_static(b"cde"));
        assert_eq!(b.len(), 5);
        b.consume(3);
        let mut slots = [IoSlice::new(&[]); 4];
        let n = b.chunks_vectored(&mut slots);
        assert_eq!(n, 1);
        assert_eq!(&*slots[0], b"de");
        b.consume(100);
        assert!(b.is_empty());
    }

    /// What a vectored write of everything would send.
    fn drain_view(b: &WriteBuffer) -> Vec<u8> {
        let mut slots = [IoSlice::new(&[]); MAX_IOVECS];
        let n = b.chunks_vectored(&mut slots);
        slots[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn small_writes_after_buffered_bytes_coalesce_into_one_slice_in_order() {
        let mut b = WriteBuffer::new();
        b.push(Bytes::from_static(b"first"));
        assert_eq!(b.chunk_count(), 1, "the first write is queued as is");
        for w in [&b"a"[..], b"bc", b"def"] {
            b.push(Bytes::copy_from_slice(w));
        }
        assert_eq!(b.chunk_count(), 2, "the small writes are one tail slice");
        let big = Bytes::from(vec![b'X'; COALESCE_MAX + 1]);
        b.push(big.clone());
        b.push(Bytes::from_static(b"gh"));
        assert_eq!(
            b.chunk_count(),
            4,
            "a large write closes the tail, keeps its own chunk"
        );
        let mut want = b"firstabcdef".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"gh");
        assert_eq!(b.len(), want.len());
        assert_eq!(drain_view(&b), want);
    }

    #[test]
    fn partial_consumes_cross_chunks_and_the_tail() {
        let mut b = WriteBuffer::new();
        b.push(Bytes::from_static(b"0123"));
        for w in [&b"45"[..], b"67", b"89"] {
            b.push(Bytes::copy_from_slice(w));
        }
        assert_eq!(drain_view(&b), b"0123456789");
        b.consume(3);
        assert_eq!(drain_view(&b), b"3456789");
        b.consume(2);
        assert_eq!(drain_view(&b), b"56789", "into the tail");
        b.push(Bytes::copy_from_slice(b"ab"));
        assert_eq!(drain_view(&b), b"56789ab");
        b.consume(7);
        assert!(b.is_empty());
        assert_eq!(b.chunk_count(), 0);
        assert_eq!(
            b.tail.capacity(),
            0,
            "a drained buffer holds no tail allocation"
        );
    }

    #[test]
    fn coalesced_bytes_count_for_the_water_marks() {
        let mut b = buf(10, 4);
        b.push(Bytes::from_static(b"12345"));
        b.push(Bytes::from_static(b"67890"));
        assert_eq!(b.check_pause(), None, "10 == high");
        b.push(Bytes::from_static(b"x"));
        assert_eq!(b.check_pause(), Some(FlowEvent::Pause));
        assert_eq!(b.consume(6), None, "5 left");
        assert_eq!(b.consume(1), Some(FlowEvent::Resume), "4 == low");
        assert_eq!(drain_view(&b), b"890x");
    }

    #[test]
    fn clear_drops_the_tail_too() {
        let mut b = WriteBuffer::new();
        b.push(Bytes::from_static(b"a"));
        b.push(Bytes::from_static(b"b"));
        b.clear();
        assert!(b.is_empty());
        assert_eq!(b.chunk_count(), 0);
        assert!(drain_view(&b).is_empty());
        assert_eq!(b.tail.capacity(), 0);
    }
}
