//! `start_tls` with bytes in flight in both directions: no byte lost,
//! duplicated, or read on the wrong side of the upgrade.

use std::sync::{Arc, Mutex};

use asyncproto_core::{
    BaseProtocol, Buffered, BufferedProtocol, Bytes, Transport,
    testing::{Event, Recorder},
};
use asyncproto_testkit::tls::TestPki;
use asyncproto_tokio::{
    ConnectOptions, ServerOptions, TlsServerOptions, TlsUpgrade, create_connection, create_server,
    start_tls,
};
use tokio::sync::oneshot;

use crate::{
    peers::client_tls,
    support::{Probe, checksum, payload, tap, within},
};

type Hook = Box<dyn FnOnce(&Transport) + Send>;

/// Reads exactly `want` plaintext bytes, never one more: `get_buffer` lends
/// only what is still missing, so bytes behind them (a `ClientHello`, TLS
/// records) stay unread for the TLS layer. Writes its own plaintext in
/// `connection_made`, and calls `done` once the peer's plaintext is in.
struct ExactPlain {
    want: usize,
    got: Vec<u8>,
    buf: Vec<u8>,
    transport: Option<Transport>,
    made: Option<Hook>,
    done: Option<Hook>,
    report: Option<oneshot::Sender<Vec<u8>>>,
}

impl ExactPlain {
    fn new(want: usize, made: Hook, done: Hook, report: oneshot::Sender<Vec<u8>>) -> Self {
        Self {
            want,
            got: Vec::new(),
            buf: vec![0; 64 * 1024],
            transport: None,
            made: Some(made),
            done: Some(done),
            report: Some(report),
        }
    }
}

impl BaseProtocol for ExactPlain {
    fn connection_made(&mut self, transport: Transport) {
        if let Some(made) = self.made.take() {
            made(&transport);
        }
        self.transport = Some(transport);
    }
}

impl BufferedProtocol for ExactPlain {
    fn get_buffer(&mut self, _sizehint: Option<usize>) -> &mut [u8] {
        let n = (self.want - self.got.len()).clamp(1, self.buf.len());
        &mut self.buf[..n]
    }

    fn buffer_updated(&mut self, nbytes: usize) {
        self.got.extend_from_slice(&self.buf[..nbytes]);
        assert!(self.got.len() <= self.want, "read past the plaintext");
        if self.got.len() == self.want {
            if let Some(report) = self.report.take() {
                let _ = report.send(std::mem::take(&mut self.got));
            }
            let t = self.transport.clone().expect("made");
            if let Some(done) = self.done.take() {
                done(&t);
            }
        }
    }
}

/// Collects `n` bytes of `data_received`, skipping flow-control edges.
async fn collect(probe: &mut Probe, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        match probe.next().await {
            Event::Data(d) => got.extend_from_slice(&d),
            Event::PauseWriting | Event::ResumeWriting => {}
            other => panic!("unexpected {other:?} after {} bytes", got.len()),
        }
    }
    assert_eq!(got.len(), n);
    got
}

/// Both ends write 1 MiB of plaintext at once; each calls `start_tls` as soon
/// as it has read exactly the peer's plaintext, while its own may still be in
/// flight, and at once queues 1 MiB for the TLS stream. The client's
/// `ClientHello` follows its plaintext on the wire. Every byte arrives once,
/// on the right side of the upgrade, checksummed.
#[tokio::test]
async fn start_tls_with_bytes_in_flight_both_directions() {
    within(30, async {
        let pki = TestPki::new();
        let c_plain = payload(1024 * 1024 + 7, 1);
        let s_plain = payload(1024 * 1024 + 13, 2);
        let c_tls = payload(1024 * 1024 + 17, 3);
        let s_tls = payload(1024 * 1024 + 19, 4);

        let (s_report, s_got_plain) = oneshot::channel();
        let (s_tap, mut s_probe) = tap(Recorder::default());
        let server_proto = {
            let (s_plain, s_tls) = (s_plain.clone(), s_tls.clone());
            let config = pki.server_config();
            ExactPlain::new(
                c_plain.len(),
                Box::new(move |t| t.write(s_plain).expect("server plaintext")),
                Box::new(move |t| {
                    let fut = start_tls(
                        t,
                        TlsUpgrade::server(TlsServerOptions::new(config)).protocol(s_tap),
                    );
                    tokio::spawn(async move { fut.await.expect("server start_tls") });
                    t.write(s_tls).expect("server TLS data");
                }),
                s_report,
            )
        };
        let slot = Arc::new(Mutex::new(Some(Buffered(server_proto))));
        let server = create_server(
            move || slot.lock().expect("slot").take().expect("one connection"),
            "127.0.0.1:0",
            ServerOptions::new(),
        )
        .await
        .expect("server");

        let (c_report, c_got_plain) = oneshot::channel();
        let (c_tap, mut c_probe) = tap(Recorder::default());
        let client_proto = {
            let (c_plain, c_tls) = (c_plain.clone(), c_tls.clone());
            let tls = client_tls(&pki);
            ExactPlain::new(
                s_plain.len(),
                Box::new(move |t| t.write(c_plain).expect("client plaintext")),
                Box::new(move |t| {
                    let fut = start_tls(t, TlsUpgrade::client(tls).protocol(c_tap));
                    tokio::spawn(async move { fut.await.expect("client start_tls") });
                    t.write(c_tls).expect("client TLS data");
                }),
                c_report,
            )
        };
        let (t, _done) = create_connection(
            move || Buffered(client_proto),
            server.local_addrs()[0],
            ConnectOptions::new(),
        )
        .await
        .expect("connect");

        assert_eq!(
            checksum(&s_got_plain.await.expect("server")),
            checksum(&c_plain)
        );
        assert_eq!(
            checksum(&c_got_plain.await.expect("client")),
            checksum(&s_plain)
        );
        let got: Bytes = collect(&mut s_probe, c_tls.len()).await.into();
        assert_eq!(checksum(&got), checksum(&c_tls));
        let got: Bytes = collect(&mut c_probe, s_tls.len()).await.into();
        assert_eq!(checksum(&got), checksum(&s_tls));
        assert!(t.is_tls());
        t.close();
        let end = c_probe.until_lost().await;
        assert_eq!(end.last(), Some(&Event::Lost(None)), "{end:?}");
        let end = s_probe.until_lost().await;
        assert_eq!(
            &end[end.len() - 2..],
            [Event::Eof, Event::Lost(None)],
            "{end:?}"
        );
        server.close();
        server.wait_closed().await;
    })
    .await;
}

/// A `start_tls` whose handshake fails (the server's certificate comes from
/// an unknown CA): the future's error still carries the `rustls::Error`,
/// and the protocol gets `connection_lost(Some(..))` with the handshake's
/// error.
#[tokio::test]
async fn failed_start_tls_reports_the_rustls_error_to_the_caller_and_the_protocol() {
    use asyncproto_tokio::rustls;
    within(10, async {
        let ours = TestPki::new();
        let theirs = TestPki::with_ca_name("some other CA");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server_config = theirs.server_config();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            // The client rejects our certificate: the handshake fails here too.
            tokio_rustls::TlsAcceptor::from(server_config)
                .accept(tcp)
                .await
                .expect_err("client rejects the certificate");
        });
        let (proto, mut probe) = tap(Recorder::default());
        let (t, _done) = create_connection(move || proto, addr, ConnectOptions::new())
            .await
            .expect("connect");
        assert_eq!(probe.next().await, Event::Made);
        let err = start_tls(&t, TlsUpgrade::client(client_tls(&ours)))
            .await
            .expect_err("unknown CA");
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert_eq!(err.tls_error(), Some(&unknown), "{err:?}");
        assert_eq!(
            probe.until_lost().await,
            [Event::Lost(Some(std::io::ErrorKind::InvalidData))]
        );
        match probe.lost_error() {
            Some(asyncproto_core::Error::Io(e)) => assert_eq!(
                e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()),
                Some(&unknown)
            ),
            other => panic!("unexpected {other:?}"),
        }
        server.await.expect("server");
    })
    .await;
}
