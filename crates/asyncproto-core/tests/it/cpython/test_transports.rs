//! Ports of CPython 3.11.7 `test_transports.py::TransportTests`.

mod transport_tests {
    use std::{io::ErrorKind, net::SocketAddr};

    use asyncproto_core::{
        Bytes, Error, ExtraInfo, TransportInfo,
        testing::{Event::*, MemoryTransport, Recorder, WriteMode},
    };

    use crate::support::{assert_quiet, blocked};

    /// Port of CPython 3.11.7
    /// `test_transports.py::TransportTests::test_get_extra_info`.
    ///
    /// - The stored values are the addresses a backend gives in
    ///   `TransportInfo`, not an arbitrary dict; `get_extra_info` returns an
    ///   `Option`, and asyncio's `default` argument is `unwrap_or`.
    #[test]
    fn test_get_extra_info() {
        let peer: SocketAddr = "192.0.2.1:443".parse().unwrap();
        let local: SocketAddr = "198.51.100.7:50000".parse().unwrap();
        let info = TransportInfo::new("memory")
            .with_peer_addr(peer)
            .with_local_addr(local);
        let mut t = MemoryTransport::with_info(Recorder::default(), info);
        let tr = t.transport().clone();

        assert_eq!(tr.get_extra_info("peername"), Some(ExtraInfo::Addr(peer)));
        assert_eq!(tr.get_extra_info("sockname"), Some(ExtraInfo::Addr(local)));
        assert_eq!(tr.get_extra_info("unknown"), None);
        let default = ExtraInfo::Addr("0.0.0.0:0".parse().unwrap());
        assert_eq!(
            tr.get_extra_info("unknown").unwrap_or(default.clone()),
            default
        );
        assert_eq!(
            tr.get_extra_info("socket"),
            None,
            "a memory transport has no socket"
        );

        tr.close();
        t.run();
        assert_eq!(t.protocol_mut().take(), [Made, Lost(None)]);
        assert_eq!(
            tr.get_extra_info("peername").and_then(|i| i.as_addr()),
            Some(peer),
            "still answered after the connection is lost"
        );
    }

    /// Port of CPython 3.11.7
    /// `test_transports.py::TransportTests::test_writelines`.
    ///
    /// - Not "one `write()` of the concatenation" (a detail of the mock):
    ///   the peer gets `line1line2line3` in order from three byte sources,
    ///   and flow control sees the batch once: with high = 9, one pause for
    ///   15 bytes.
    #[test]
    fn test_writelines() {
        let mut t = blocked();
        t.transport()
            .set_write_buffer_limits(Some(9), Some(0))
            .unwrap();
        let owned = Bytes::from(b"line2".to_vec());
        let sliced = Bytes::from_static(b"<line3>").slice(1..6);
        t.transport()
            .writelines([Bytes::from_static(b"line1"), owned, Bytes::new(), sliced])
            .unwrap();
        t.run();
        assert_eq!(t.transport().get_write_buffer_size(), 15);
        assert_eq!(t.protocol().events(), [Made, PauseWriting]);

        t.set_write_mode(WriteMode::Accept);
        assert_eq!(t.take_written(), "line1line2line3");
        assert_eq!(t.protocol_mut().take(), [Made, PauseWriting, ResumeWriting]);

        t.transport().write_eof().unwrap();
        assert!(matches!(
            t.transport().writelines(["late"]),
            Err(Error::WriteAfterEof)
        ));
        t.run();
        assert!(t.is_write_shut());
        assert_eq!(t.written(), b"");
        assert_quiet(&mut t);
    }

    /// Port of CPython 3.11.7
    /// `test_transports.py::TransportTests::test_flowcontrol_mixin_set_write_limits`.
    ///
    /// - The 512 buffered bytes are real (peer blocked), not a mocked
    ///   `get_write_buffer_size`. `ValueError` is the typed `InvalidLimits`.
    /// - The re-check's pause, made from outside a callback, is delivered at
    ///   the connection's next wake-up, not inside the call.
    /// - Beyond upstream: the re-check never resumes; the next drain does.
    #[test]
    fn test_flowcontrol_mixin_set_write_limits() {
        let mut t = blocked();
        t.transport().write(vec![b'x'; 512]).unwrap();
        t.run();
        assert_eq!(t.transport().get_write_buffer_size(), 512);

        let err = t
            .transport()
            .set_write_buffer_limits(Some(0), Some(1))
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidLimits { high: 0, low: 1 }),
            "{err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("must be >= low"), "{err}");

        t.transport()
            .set_write_buffer_limits(Some(1024), Some(128))
            .unwrap();
        t.run();
        assert_eq!(t.protocol().events(), [Made], "512 <= 1024: not paused");
        assert_eq!(t.transport().get_write_buffer_limits(), (128, 1024));

        t.transport()
            .set_write_buffer_limits(Some(256), Some(128))
            .unwrap();
        assert_eq!(t.protocol().events(), [Made], "not from inside the call");
        t.run();
        assert_eq!(t.protocol().events(), [Made, PauseWriting]);
        assert_eq!(t.transport().get_write_buffer_limits(), (128, 256));

        t.transport()
            .set_write_buffer_limits(Some(4096), Some(1024))
            .unwrap();
        t.run();
        assert_eq!(
            t.protocol().events(),
            [Made, PauseWriting],
            "the re-check never resumes"
        );

        t.drain(1);
        assert_eq!(t.transport().get_write_buffer_size(), 511);
        assert_eq!(t.protocol_mut().take(), [Made, PauseWriting, ResumeWriting]);
        assert_quiet(&mut t);
    }
}
