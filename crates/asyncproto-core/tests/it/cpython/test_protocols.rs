//! Ports of CPython 3.11.7 `test_protocols.py::ProtocolsAbsTests`.

mod protocols_abs_tests {
    use asyncproto_core::{
        BaseProtocol, Error, Protocol,
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
}
