//! Upgrading a stream in place (`request_upgrade`, the core of `start_tls`)
//! and the TLS rules a connection follows afterwards (`enter_tls`), on the
//! memory transport: it performs an upgrade at once, without a handshake, so
//! the byte boundary and the callback order can be checked exactly.

use std::io;

use asyncproto_core::{
    Error,
    lifecycle::{TLS_HIGH_WATER, request_upgrade},
    testing::{Event, MemoryTransport, Recorder, WriteMode},
};

use Event::{Data, Eof, Lost, Made};

fn upgraded(rec: Recorder) -> MemoryTransport<Recorder> {
    let mut t = MemoryTransport::new(rec);
    request_upgrade(t.transport(), Box::new("tls")).expect("upgrade");
    t.run();
    assert_eq!(t.upgrades().len(), 1);
    t
}

#[test]
fn bytes_written_before_the_request_go_out_before_the_switch() {
    let mut t = MemoryTransport::new(Recorder::default());
    t.set_write_mode(WriteMode::Block);
    t.transport().write("plain").unwrap();
    request_upgrade(t.transport(), Box::new(())).unwrap();
    t.transport().write("secure").unwrap();
    t.run();
    assert!(t.upgrades().is_empty(), "plaintext not sent yet");
    t.set_write_mode(WriteMode::Limit(3));
    t.run();
    assert!(t.upgrades().is_empty(), "3 of 5 plain bytes sent");
    t.set_write_mode(WriteMode::Accept);
    t.run();
    assert_eq!(t.upgrades().len(), 1);
    assert_eq!(t.upgrades()[0].at_written, 5);
    assert!(t.upgrades()[0].request.downcast_ref::<()>().is_some());
    assert_eq!(&t.take_written()[..], b"plainsecure");
}

#[test]
fn nothing_is_read_while_an_upgrade_is_pending() {
    let mut t = MemoryTransport::new(Recorder::default());
    t.set_write_mode(WriteMode::Block);
    t.transport().write("x").unwrap();
    request_upgrade(t.transport(), Box::new(())).unwrap();
    t.feed("for the upgraded stream");
    assert_eq!(t.protocol().events(), [Made]);
    t.set_write_mode(WriteMode::Accept);
    t.run();
    assert_eq!(
        t.protocol().events(),
        [Made, Data("for the upgraded stream".into())]
    );
    assert!(t.upgrades()[0].held.is_none());
}

#[test]
fn close_while_an_upgrade_is_pending_aborts() {
    let mut t = MemoryTransport::new(Recorder::default());
    t.set_write_mode(WriteMode::Block);
    t.transport().write("a").unwrap();
    request_upgrade(t.transport(), Box::new(())).unwrap();
    t.transport().write("meant for TLS").unwrap();
    t.transport().close();
    t.set_write_mode(WriteMode::Accept);
    t.run();
    assert!(t.is_closed());
    assert!(t.upgrades().is_empty());
    assert_eq!(t.written(), b"", "nothing goes out after an abort");
    assert_eq!(t.protocol().events(), [Made, Lost(None)]);
}

#[test]
fn a_second_upgrade_or_one_after_close_is_refused() {
    let t = upgraded(Recorder::default());
    assert!(matches!(
        request_upgrade(t.transport(), Box::new(())),
        Err(Error::Unsupported {
            method: "start_tls"
        })
    ));
    let t = MemoryTransport::new(Recorder::default());
    request_upgrade(t.transport(), Box::new(())).unwrap();
    assert!(matches!(
        request_upgrade(t.transport(), Box::new(())),
        Err(Error::Unsupported { .. })
    ));
    let t = MemoryTransport::new(Recorder::default());
    t.transport().close();
    assert!(matches!(
        request_upgrade(t.transport(), Box::new(())),
        Err(Error::Closed)
    ));
}

#[test]
fn tls_has_no_half_close_and_asyncio_tls_marks() {
    let t = upgraded(Recorder::default());
    assert!(t.transport().is_tls());
    assert!(!t.transport().can_write_eof());
    assert!(matches!(
        t.transport().write_eof(),
        Err(Error::Unsupported {
            method: "write_eof"
        })
    ));
    assert_eq!(
        t.transport().get_write_buffer_limits(),
        (TLS_HIGH_WATER / 4, TLS_HIGH_WATER)
    );
}

#[test]
fn tls_eof_received_true_is_ignored_and_the_transport_closes() {
    let mut t = upgraded(Recorder::default().eof_returns(true));
    t.feed("abc");
    t.feed_eof();
    assert!(t.is_write_shut(), "close_notify sent");
    assert!(t.is_closed());
    assert_eq!(
        t.protocol().events(),
        [Made, Data("abc".into()), Eof, Lost(None)]
    );
}

#[test]
fn tls_close_sends_close_notify_then_waits_for_the_peer_discarding_data() {
    let mut t = upgraded(Recorder::default());
    t.transport().write("last").unwrap();
    t.transport().close();
    t.run();
    assert!(t.is_write_shut());
    assert_eq!(&t.take_written()[..], b"last");
    assert!(!t.is_closed(), "waiting for the peer's close_notify");
    t.feed("sent before the peer saw our close_notify");
    assert!(!t.is_closed());
    t.feed_eof();
    assert!(t.is_closed());
    assert_eq!(t.protocol().events(), [Made, Lost(None)]);
}

#[test]
fn tls_close_answered_by_a_bare_fin_ends_cleanly() {
    let mut t = upgraded(Recorder::default());
    t.transport().close();
    t.run();
    t.feed_error(io::ErrorKind::UnexpectedEof.into());
    assert!(t.is_closed());
    assert_eq!(t.protocol().events(), [Made, Lost(None)]);
}

#[test]
fn tls_truncation_while_open_is_an_error_not_eof() {
    let mut t = upgraded(Recorder::default());
    t.feed("abc");
    t.feed_error(io::ErrorKind::UnexpectedEof.into());
    assert!(t.is_closed());
    assert_eq!(
        t.protocol().events(),
        [
            Made,
            Data("abc".into()),
            Lost(Some(io::ErrorKind::UnexpectedEof))
        ]
    );
}

#[test]
fn tls_abort_sends_no_close_notify() {
    let mut t = upgraded(Recorder::default());
    t.transport().write("dropped").unwrap();
    t.set_write_mode(WriteMode::Block);
    t.transport().abort();
    t.run();
    assert!(t.is_closed());
    assert!(!t.is_write_shut());
    assert_eq!(t.protocol().events(), [Made, Lost(None)]);
}

#[test]
fn tls_abort_after_close_stops_waiting_for_the_peer() {
    let mut t = upgraded(Recorder::default());
    t.transport().close();
    t.run();
    assert!(t.is_write_shut());
    assert!(!t.is_closed(), "waiting for the peer's close_notify");
    t.transport().abort();
    t.run();
    assert!(t.is_closed());
    assert_eq!(t.protocol().events(), [Made, Lost(None)]);
}

#[test]
fn tls_writes_after_close_are_dropped_and_counted() {
    let mut t = upgraded(Recorder::default());
    t.set_write_mode(WriteMode::Block);
    t.transport().write("before").unwrap();
    t.transport().close();
    t.transport().write("after").unwrap();
    assert_eq!(t.transport().get_write_buffer_size(), 6);
    t.set_write_mode(WriteMode::Accept);
    t.run();
    assert_eq!(&t.take_written()[..], b"before");
}
