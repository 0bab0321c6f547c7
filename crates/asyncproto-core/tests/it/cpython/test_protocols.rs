//! Ports of CPython 3.11.7 `test_protocols.py::ProtocolsAbsTests`.

mod protocols_abs_tests {
    use asyncproto_core::{
        BaseProtocol, Buffered, BufferedProtocol, Error, Protocol,
        testing::{MemoryTransport, WriteMode},
    };

    /// A protocol that overrides nothing.
    struct Defaults;

    impl BaseProtocol for Defaults {}

    impl Protocol for Defaults {}

    /// Port of CPython 3.11.7
    /// `test_protocols.py::ProtocolsAbsTests::test_base_protocol`.
    ///
    /// - "Returns None" is a `()` return, checked by type; the `__dict__`
    ///   (slots) check has no Rust counterpart.
    /// - Beyond upstream: the defaults are driven through a real connection
    ///   (made, pause, resume, lost) and do nothing.
    #[test]
    fn test_base_protocol() {
        let mut t = MemoryTransport::new(Defaults);
        let transport = t.transport().clone();

        let mut p = Defaults;
        let () = p.connection_made(transport.clone());
        let () = p.connection_lost(None);
        let () = p.connection_lost(Some(Error::Cancelled));
        let () = p.pause_writing();
        let () = p.resume_writing();

        transport.set_write_buffer_limits(Some(1), Some(0)).unwrap();
        t.set_write_mode(WriteMode::Block);
        transport.write("ab").unwrap();
        t.run(); // pause_writing
        t.set_write_mode(WriteMode::Accept); // resume_writing
        assert_eq!(t.take_written(), "ab");
        assert!(!transport.is_closing(), "the default callbacks did nothing");

        transport.close();
        t.run(); // connection_lost
        assert!(t.is_closed());
        assert!(t.has_protocol());
    }

    /// Port of CPython 3.11.7
    /// `test_protocols.py::ProtocolsAbsTests::test_protocol`.
    ///
    /// - `eof_received()` returning None (falsy) is the default `false`; its
    ///   effect is driven through the memory transport: EOF closes it.
    #[test]
    fn test_protocol() {
        let mut p = Defaults;
        let () = p.data_received("data".into());
        assert!(!p.eof_received());

        let mut t = MemoryTransport::new(Defaults);
        t.feed("data");
        assert!(!t.transport().is_closing());
        t.feed_eof();
        assert!(t.transport().is_closing());
        assert!(
            t.is_closed(),
            "the default eof_received closes the transport"
        );
    }

    /// A buffered protocol that implements only the required methods.
    struct BufferedDefaults {
        buf: [u8; 8],
        updated: usize,
    }

    impl BaseProtocol for BufferedDefaults {}

    impl BufferedProtocol for BufferedDefaults {
        fn get_buffer(&mut self, _sizehint: Option<usize>) -> &mut [u8] {
            &mut self.buf
        }

        fn buffer_updated(&mut self, nbytes: usize) {
            self.updated += nbytes;
        }
    }

    /// Port of CPython 3.11.7
    /// `test_protocols.py::ProtocolsAbsTests::test_buffered_protocol`.
    ///
    /// - `get_buffer` returning None is n/a: it is a required method that
    ///   returns a buffer. `buffer_updated` is required too in asyncproto
    ///   (asyncio's no-op default is n/a), so the protocol implements both and
    ///   the test checks the remaining defaults: the `BaseProtocol` ones do
    ///   nothing and `eof_received` returns false, so EOF closes the transport.
    /// - `get_buffer(100)` is `get_buffer(Some(100))`; the `__dict__` (slots)
    ///   check has no Rust counterpart.
    #[test]
    fn test_buffered_protocol() {
        let mut t = MemoryTransport::new(Buffered(BufferedDefaults {
            buf: [0; 8],
            updated: 0,
        }));
        let transport = t.transport().clone();

        let mut p = BufferedDefaults {
            buf: [0; 8],
            updated: 0,
        };
        let () = p.connection_made(transport.clone());
        let () = p.connection_lost(Some(Error::Cancelled));
        let () = p.pause_writing();
        let () = p.resume_writing();
        assert_eq!(p.get_buffer(Some(100)).len(), 8);
        assert!(!BufferedProtocol::eof_received(&mut p));

        transport.set_write_buffer_limits(Some(1), Some(0)).unwrap();
        t.set_write_mode(WriteMode::Block);
        transport.write("ab").unwrap();
        t.run(); // pause_writing
        t.set_write_mode(WriteMode::Accept); // resume_writing
        assert_eq!(t.take_written(), "ab");
        assert!(!transport.is_closing(), "the default callbacks did nothing");

        t.feed("data");
        assert_eq!(t.protocol().0.updated, 4);
        assert!(!transport.is_closing());
        t.feed_eof();
        assert!(
            t.is_closed(),
            "the default eof_received closes the transport"
        );
        assert!(t.has_protocol());
    }
}
