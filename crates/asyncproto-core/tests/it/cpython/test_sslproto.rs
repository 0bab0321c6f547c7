//! Ports of CPython 3.11.7 `test_sslproto.py`: the one row that needs no TLS.

mod selector_start_tls_tests {
    use asyncproto_core::{BaseProtocol, BufferedProtocol, Error, lifecycle::feed_buffered};

    /// Upstream's `Proto`: one buffer of a fixed size, lent on every
    /// `get_buffer`; `buffer_updated` appends what it reports.
    struct Proto {
        buf: Vec<u8>,
        data: Vec<u8>,
        hints: Vec<Option<usize>>,
        updates: Vec<usize>,
    }

    impl Proto {
        fn new(bufsize: usize) -> Self {
            Self {
                buf: vec![0; bufsize],
                data: Vec::new(),
                hints: Vec::new(),
                updates: Vec::new(),
            }
        }
    }

    impl BaseProtocol for Proto {}

    impl BufferedProtocol for Proto {
        fn get_buffer(&mut self, sizehint: Option<usize>) -> &mut [u8] {
            self.hints.push(sizehint);
            &mut self.buf
        }

        fn buffer_updated(&mut self, nbytes: usize) {
            self.data.extend_from_slice(&self.buf[..nbytes]);
            self.updates.push(nbytes);
        }
    }

    /// Port of CPython 3.11.7
    /// `test_sslproto.py::SelectorStartTLSTests::test_buf_feed_data`.
    ///
    /// - `protocols._feed_data_to_buffered_proto` is
    ///   `asyncproto_core::lifecycle::feed_buffered`.
    /// - The `usemv` loop (a `bytearray` or a `memoryview` of it) is n/a: the
    ///   buffer is one `&mut [u8]`.
    /// - `RuntimeError('… empty buffer')` is the typed `Error::EmptyBuffer`.
    /// - Beyond upstream: the size hints (the bytes left, as asyncio passes)
    ///   and the `buffer_updated` counts are checked too.
    #[test]
    fn test_buf_feed_data() {
        for (bufsize, updates, hints) in [
            (1, &[1, 1, 1, 1, 1][..], &[5, 4, 3, 2, 1][..]),
            (2, &[2, 2, 1], &[5, 3, 1]),
            (4, &[4, 1], &[5, 1]),
            (100, &[5], &[5]),
        ] {
            let mut proto = Proto::new(bufsize);
            feed_buffered(&mut proto, b"12345").expect("fed");
            assert_eq!(proto.data, b"12345", "buffer of {bufsize}");
            assert_eq!(proto.updates, updates, "buffer of {bufsize}");
            let want: Vec<_> = hints.iter().copied().map(Some).collect();
            assert_eq!(proto.hints, want, "buffer of {bufsize}");
        }

        let mut proto = Proto::new(0);
        let err = feed_buffered(&mut proto, b"12345").expect_err("empty buffer");
        assert!(matches!(err, Error::EmptyBuffer), "{err:?}");
        assert!(err.to_string().contains("empty buffer"), "{err}");
        assert!(proto.updates.is_empty(), "no buffer_updated");
    }
}
