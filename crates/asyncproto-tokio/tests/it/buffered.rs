//! `BufferedProtocol` over loopback TCP: [`BufRec`], the recording buffered
//! protocol the `cpython` and `uvloop` ports use, and behaviour tests named
//! by behaviour.
//!
//! On real sockets the number of `get_buffer` calls depends on timing (one
//! per read attempt, answered or not), so `BufRec` counts them but keeps them
//! out of its event list; it checks instead that every `buffer_updated`
//! answers a `get_buffer` and fits the buffer it was lent.

use std::{fmt, io::ErrorKind};

use asyncproto_core::{BaseProtocol, Buffered, BufferedProtocol, Error as CoreError, Transport};
use asyncproto_tokio::{ServerOptions, create_server};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};

use crate::support::{checksum, payload, raw_connect};

/// A callback recorded by [`BufRec`] (`get_buffer` is only counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ev {
    /// `connection_made`.
    Made,
    /// `buffer_updated(nbytes)`.
    Updated(usize),
    /// `eof_received`.
    Eof,
    /// `connection_lost(exc)`, with the error's kind.
    Lost(Option<ErrorKind>),
}

/// A fault [`BufRec`] injects into its own callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// `get_buffer` panics.
    PanicInGetBuffer,
    /// `get_buffer` returns an empty buffer.
    EmptyBuffer,
    /// `buffer_updated` panics.
    PanicInBufferUpdated,
}

/// What a [`BufRec`] saw, sent when `connection_lost` has run.
#[derive(Debug)]
pub(crate) struct Report {
    /// Every callback but `get_buffer`, in order.
    pub(crate) events: Vec<Ev>,
    /// Every byte `buffer_updated` reported, in order.
    pub(crate) data: Vec<u8>,
    /// How many times `get_buffer` was called.
    pub(crate) get_buffers: usize,
    /// The error `connection_lost` got.
    pub(crate) error: Option<CoreError>,
}

impl Report {
    /// The events without the `buffer_updated` ones.
    pub(crate) fn calls(&self) -> Vec<Ev> {
        self.events
            .iter()
            .filter(|e| !matches!(e, Ev::Updated(_)))
            .cloned()
            .collect()
    }

    /// The `buffer_updated` counts, in order.
    pub(crate) fn updates(&self) -> Vec<usize> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Ev::Updated(n) => Some(*n),
                _ => None,
            })
            .collect()
    }
}

type OnData = Box<dyn FnMut(&[u8], &Transport) + Send>;

/// A `BufferedProtocol` with a `size`-byte buffer that records its callbacks
/// and sends a [`Report`] from `connection_lost`.
pub(crate) struct BufRec {
    size: usize,
    buf: Vec<u8>,
    fresh: bool,
    fault: Option<Fault>,
    /// A `get_buffer` is waiting for its `buffer_updated`.
    asked: bool,
    transport: Option<Transport>,
    events: Vec<Ev>,
    data: Vec<u8>,
    get_buffers: usize,
    on_data: Option<OnData>,
    report: mpsc::UnboundedSender<Report>,
}

impl BufRec {
    /// A recorder lending one `size`-byte buffer, allocated once, and the
    /// receiver its report comes out of.
    pub(crate) fn new(size: usize) -> (Self, mpsc::UnboundedReceiver<Report>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self::reporting_to(size, tx), rx)
    }

    /// As [`new`](Self::new), reporting to `report` (a server's factory
    /// gives every connection the same sender).
    pub(crate) fn reporting_to(size: usize, report: mpsc::UnboundedSender<Report>) -> Self {
        Self {
            size,
            buf: vec![0; size],
            fresh: false,
            fault: None,
            asked: false,
            transport: None,
            events: Vec::new(),
            data: Vec::new(),
            get_buffers: 0,
            on_data: None,
            report,
        }
    }

    /// Allocates a fresh buffer on every `get_buffer`, as CPython's
    /// `ReceiveStuffProto` does.
    #[must_use]
    pub(crate) fn fresh_buffers(mut self) -> Self {
        self.fresh = true;
        self
    }

    /// Injects `fault`.
    #[must_use]
    pub(crate) fn fault(mut self, fault: Fault) -> Self {
        self.fault = Some(fault);
        self
    }

    /// Runs `f` after each `buffer_updated` with everything received so far.
    #[must_use]
    pub(crate) fn on_data(mut self, f: impl FnMut(&[u8], &Transport) + Send + 'static) -> Self {
        self.on_data = Some(Box::new(f));
        self
    }
}

impl fmt::Debug for BufRec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufRec")
            .field("size", &self.size)
            .field("events", &self.events.len())
            .field("data", &self.data.len())
            .finish_non_exhaustive()
    }
}

impl BaseProtocol for BufRec {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
        self.events.push(Ev::Made);
    }

    fn connection_lost(&mut self, exc: Option<CoreError>) {
        self.events
            .push(Ev::Lost(exc.as_ref().map(CoreError::kind)));
        let _ = self.report.send(Report {
            events: std::mem::take(&mut self.events),
            data: std::mem::take(&mut self.data),
            get_buffers: self.get_buffers,
            error: exc,
        });
    }
}

impl BufferedProtocol for BufRec {
    fn get_buffer(&mut self, sizehint: Option<usize>) -> &mut [u8] {
        assert_eq!(sizehint, None, "sockets give no size hint");
        self.get_buffers += 1;
        self.asked = true;
        match self.fault {
            Some(Fault::PanicInGetBuffer) => panic!("ZeroDivisionError"),
            Some(Fault::EmptyBuffer) => return &mut [],
            _ => {}
        }
        if self.fresh {
            self.buf = vec![0; self.size];
        }
        &mut self.buf
    }

    fn buffer_updated(&mut self, nbytes: usize) {
        assert!(self.asked, "buffer_updated without get_buffer");
        assert!(
            (1..=self.size).contains(&nbytes),
            "buffer_updated({nbytes}) for a {}-byte buffer",
            self.size
        );
        self.asked = false;
        self.events.push(Ev::Updated(nbytes));
        if self.fault == Some(Fault::PanicInBufferUpdated) {
            panic!("oups");
        }
        self.data.extend_from_slice(&self.buf[..nbytes]);
        if let (Some(f), Some(t)) = (self.on_data.as_mut(), self.transport.as_ref()) {
            f(&self.data, t);
        }
    }

    fn eof_received(&mut self) -> bool {
        self.events.push(Ev::Eof);
        false
    }
}

/// A server whose connections each run a `Buffered(make(sender))`, and the
/// receiver of their reports.
pub(crate) async fn buffered_server(
    make: impl Fn(mpsc::UnboundedSender<Report>) -> BufRec + Send + Sync + 'static,
) -> (asyncproto_tokio::Server, mpsc::UnboundedReceiver<Report>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let srv = create_server(
        move || Buffered(make(tx.clone())),
        "127.0.0.1:0",
        ServerOptions::new(),
    )
    .await
    .expect("create_server");
    (srv, rx)
}

// ---------------------------------------------------------------------------
// Behaviour.

/// 1 MiB through a 61-byte buffer: every byte, in order, each
/// `buffer_updated` answering its `get_buffer` within the buffer; then EOF
/// and `connection_lost(None)`.
async fn a_megabyte_through_a_61_byte_buffer_arrives_in_order() {
    let (srv, mut reports) = buffered_server(|tx| BufRec::reporting_to(61, tx)).await;
    let data = payload(1 << 20, 7);
    let mut peer = raw_connect(srv.local_addrs()[0], None).await;
    peer.write_all(&data).await.expect("send");
    peer.shutdown().await.expect("half-close");

    let report = reports.recv().await.expect("report");
    assert_eq!(report.calls(), [Ev::Made, Ev::Eof, Ev::Lost(None)]);
    assert_eq!(report.data.len(), data.len());
    assert_eq!(checksum(&report.data), checksum(&data));
    assert!(report.updates().iter().all(|&n| n <= 61));
    assert!(report.get_buffers > report.updates().len(), "EOF asks too");
    srv.close();
    srv.wait_closed().await;
}

/// A read that drains the socket registers the connection for the next
/// readiness event, and the read it would try after the callback is
/// skipped: `get_buffer` is asked once per message that arrives on its own
/// (asyncio: once per readiness event), not once more for a read that could
/// only find nothing.
async fn get_buffer_is_asked_once_per_message() {
    const MESSAGES: usize = 40;
    let (srv, mut reports) = buffered_server(|tx| {
        BufRec::reporting_to(1024, tx).on_data(|_, t| {
            t.write(&b"k"[..]).expect("ack");
        })
    })
    .await;
    let mut peer = raw_connect(srv.local_addrs()[0], None).await;
    for i in 0..MESSAGES {
        peer.write_all(&payload(100, i as u64)).await.expect("send");
        let mut ack = [0u8; 1];
        peer.read_exact(&mut ack).await.expect("ack");
    }
    peer.shutdown().await.expect("half-close");

    let report = reports.recv().await.expect("report");
    assert_eq!(report.updates(), [100; MESSAGES]);
    assert_eq!(report.calls(), [Ev::Made, Ev::Eof, Ev::Lost(None)]);
    // One per message, one for the EOF, and the first read attempt before
    // any data; a spare one for a spurious wake-up. Without the skip it is
    // two per message.
    assert!(
        (MESSAGES + 1..=MESSAGES + 3).contains(&report.get_buffers),
        "{} get_buffer calls for {MESSAGES} messages",
        report.get_buffers
    );
    srv.close();
    srv.wait_closed().await;
}

crate::support::on_both_runtimes!(30;
    a_megabyte_through_a_61_byte_buffer_arrives_in_order,
    get_buffer_is_asked_once_per_message,
);
