//! `echo_server --tls-*` and `tls_echo_client` against real TLS peers: stock
//! asyncio with Python's `ssl`, `openssl s_client`, blocking `rustls`
//! clients and raw sockets; EXAMPLES.md's TLS robustness rules.
//!
//! Every test generates its own PKI (`TestPki`, ECDSA P-256) into a
//! temporary directory: no private key is committed.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Shutdown, SocketAddr, TcpStream},
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant},
};

use asyncproto::rustls::{ClientConfig, ClientConnection, StreamOwned, pki_types::ServerName};
use asyncproto_testkit::tls::TestPki;

use crate::{
    echo_server::{eventually, open_fds, rss_kib},
    support::{
        Server, example, have_python, payload, python, run_with_deadline, wait_with_deadline,
    },
};

const MESSAGE: &str = "Hello World!";

/// A fresh PKI, written as PEM files into a directory of its own that is
/// removed on drop.
struct Pki {
    pki: TestPki,
    dir: PathBuf,
}

impl Pki {
    fn new() -> Self {
        Self::write(TestPki::new())
    }

    fn write(pki: TestPki) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "asyncproto-interop-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the PKI directory");
        pki.write_pem(&dir).expect("write the PEM files");
        Self { pki, dir }
    }

    /// The path of `ca.pem`, `server.pem`, `server.key`, `client.pem` or
    /// `client.key`.
    fn file(&self, name: &str) -> String {
        self.dir
            .join(name)
            .to_str()
            .expect("UTF-8 temporary path")
            .to_owned()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tls_echo_server(pki: &Pki, extra: &[&str]) -> Server {
    let mut cmd = example("echo_server");
    cmd.args([
        "--addr",
        "127.0.0.1:0",
        "--tls-cert",
        &pki.file("server.pem"),
        "--tls-key",
        &pki.file("server.key"),
    ])
    .args(extra);
    Server::start(cmd)
}

type TlsClient = StreamOwned<ClientConnection, TcpStream>;

/// A blocking `rustls` client of `addr` that has finished its handshake
/// (verifying `localhost`); reads and writes time out after 10 s.
fn tls_connect(config: Arc<ClientConfig>, addr: SocketAddr) -> TlsClient {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .expect("write timeout");
    let name = ServerName::try_from("localhost").expect("server name");
    let conn = ClientConnection::new(config, name).expect("client connection");
    let mut s = StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).expect("TLS handshake");
    }
    s
}

/// Writes `msg` and reads its echo back.
fn echo_once(s: &mut TlsClient, msg: &[u8]) {
    s.write_all(msg).expect("write");
    s.flush().expect("flush");
    let mut back = vec![0; msg.len()];
    s.read_exact(&mut back).expect("read the echo");
    assert_eq!(back, msg);
}

/// Sends `close_notify` and reads until the server's (and its FIN).
fn close_cleanly(mut c: TlsClient) {
    c.conn.send_close_notify();
    c.flush().expect("send close_notify");
    let mut rest = Vec::new();
    c.read_to_end(&mut rest)
        .expect("the server's close_notify, then EOF");
    assert!(
        rest.is_empty(),
        "{} bytes after our close_notify",
        rest.len()
    );
}

/// The first flight of a `rustls` client: a whole `ClientHello` record.
fn client_hello(pki: &TestPki) -> Vec<u8> {
    let name = ServerName::try_from("localhost").expect("server name");
    let mut conn = ClientConnection::new(pki.client_config(), name).expect("client connection");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("ClientHello");
    hello
}

/// Sends up to `target` plaintext bytes on `c` without ever reading, until
/// a socket write fails (its write timeout: the peer stopped reading).
/// Returns the bytes handed to `rustls` and the error that stopped it.
fn send_without_reading(c: &mut TlsClient, target: usize) -> (usize, Option<std::io::Error>) {
    let chunk = payload(64 * 1024, 5);
    let mut sent = 0usize;
    while sent < target {
        sent += c
            .conn
            .writer()
            .write(&chunk)
            .expect("plaintext into rustls");
        while c.conn.wants_write() {
            if let Err(e) = c.conn.write_tls(&mut c.sock) {
                return (sent, Some(e));
            }
        }
    }
    (sent, None)
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Reads `s` until the peer closes it; panics if that takes `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Duration {
    s.set_read_timeout(Some(limit)).expect("read timeout");
    let started = Instant::now();
    let mut sink = Vec::new();
    match s.read_to_end(&mut sink) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("not closed within {limit:?}: {e}"),
    }
    started.elapsed()
}

fn have_openssl() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn expected_lines(message: &str) -> String {
    format!(
        "Data sent: '{message}'\nData received: '{message}'\nThe server closed the connection\n"
    )
}

/// Runs `tls_echo_client` against `addr` with `args` after the address.
fn tls_echo_client(addr: SocketAddr, args: &[&str]) -> std::process::Output {
    let mut cmd = example("tls_echo_client");
    cmd.args(["--addr", &addr.to_string()]).args(args);
    run_with_deadline(cmd, Duration::from_secs(20))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// (a) Stock asyncio with an `ssl.SSLContext` as the client.

#[test]
fn python_ssl_client_gets_1_mb_back_and_both_sides_close_notify() {
    if !have_python() {
        eprintln!("skipped: python3 not found");
        return;
    }
    // TLS 1.3 against the Protocol echo, TLS 1.2 against the buffered one.
    for (mode, peer_args) in [
        (&["--threads", "2"][..], &[][..]),
        (&["--buffered", "--threads", "1"][..], &["--tls12"][..]),
    ] {
        let pki = Pki::new();
        let server = tls_echo_server(&pki, mode);
        let pid = server.child.id();
        let fds_before = open_fds(pid);
        let mut warm = tls_connect(pki.pki.client_config(), server.addr);
        echo_once(&mut warm, b"warm");
        close_cleanly(warm);

        let mut cmd = python("tls_stream_peer.py");
        cmd.args([
            "--addr",
            &server.addr.to_string(),
            "--size",
            "1048576",
            "--ca",
            &pki.file("ca.pem"),
        ])
        .args(peer_args);
        let started = Instant::now();
        let out = run_with_deadline(cmd, Duration::from_secs(60));
        let took = started.elapsed();
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{mode:?}: peer failed: {stdout} {}",
            text(&out.stderr)
        );
        // The peer compares SHA-256 of what it sent and got, and sees
        // connection_lost(None): the server answered its close_notify with
        // one of its own (a missing one is an error or a 10 s timeout).
        assert!(stdout.starts_with("ok 1048576 "), "{mode:?}: {stdout}");
        let want = if peer_args.is_empty() {
            "TLSv1.3"
        } else {
            "TLSv1.2"
        };
        assert!(stdout.trim_end().ends_with(want), "{mode:?}: {stdout}");
        assert!(took < Duration::from_secs(10), "{mode:?}: took {took:?}");
        // The server closed its side too: its descriptors came back.
        assert!(
            eventually(Duration::from_secs(10), || open_fds(pid) <= fds_before),
            "{mode:?}: fds {fds_before} before, {} after",
            open_fds(pid)
        );
        eprintln!("{mode:?}: 1 MiB echoed over {want} in {took:?}");
    }
}

// (b) `tls_echo_client` against a stock asyncio TLS server, and ours.

#[test]
fn rust_tls_client_against_python_tls_server_prints_the_spec_lines() {
    if !have_python() {
        eprintln!("skipped: python3 not found");
        return;
    }
    let pki = Pki::new();
    let mut cmd = python("tls_echo_server.py");
    cmd.args([
        "--addr",
        "127.0.0.1:0",
        "--cert",
        &pki.file("server.pem"),
        "--key",
        &pki.file("server.key"),
    ]);
    let server = Server::start(cmd);
    let ca = pki.file("ca.pem");
    for name in [&["--server-name", "localhost"][..], &[]] {
        let mut args = vec!["--message", MESSAGE, "--ca", &ca];
        args.extend_from_slice(name);
        let out = tls_echo_client(server.addr, &args);
        assert!(
            out.status.success(),
            "{name:?}: {:?}\nstderr: {}",
            out.status,
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), expected_lines(MESSAGE), "{name:?}");
    }
}

#[test]
fn rust_tls_client_against_tls_echo_server_prints_the_spec_lines() {
    let pki = Pki::new();
    let ca = pki.file("ca.pem");
    for mode in [&["--threads", "1"][..], &["--buffered"]] {
        let server = tls_echo_server(&pki, mode);
        let out = tls_echo_client(server.addr, &["--message", "interop test 42", "--ca", &ca]);
        assert!(
            out.status.success(),
            "{mode:?}: {:?}\nstderr: {}",
            out.status,
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), expected_lines("interop test 42"));
    }
}

#[test]
fn tls_echo_client_exits_non_zero_on_a_certificate_it_cannot_verify() {
    let pki = Pki::new();
    let server = tls_echo_server(&pki, &[]);
    let other = Pki::write(TestPki::with_ca_name("another CA"));
    for (args, why) in [
        (
            vec!["--ca", &pki.file("ca.pem"), "--server-name", "example.com"],
            "not valid for name",
        ),
        (vec!["--ca", &other.file("ca.pem")], "UnknownIssuer"),
    ] {
        let out = tls_echo_client(server.addr, &args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
        assert_eq!(
            text(&out.stdout),
            "",
            "{args:?}: nothing reaches the protocol"
        );
    }
    let out = tls_echo_client(server.addr, &["--ca", &pki.file("ca.pem")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn mtls_echo_server_serves_a_client_certificate_and_refuses_none() {
    let pki = Pki::new();
    let ca = pki.file("ca.pem");
    let server = tls_echo_server(&pki, &["--tls-client-ca", &ca]);
    let (cert, key) = (pki.file("client.pem"), pki.file("client.key"));
    let out = tls_echo_client(
        server.addr,
        &[
            "--message",
            MESSAGE,
            "--ca",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), expected_lines(MESSAGE));

    // Without a certificate: TLS 1.3 finishes the client's handshake first,
    // then the server's alert ends the connection; no echo comes back.
    let out = tls_echo_client(server.addr, &["--message", MESSAGE, "--ca", &ca]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(!stdout.contains("Data received"), "{stdout}");
    assert!(
        text(&out.stderr).contains("CertificateRequired"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn echo_server_exits_non_zero_on_unusable_pem_files() {
    let pki = Pki::new();
    let garbage = pki.dir.join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let garbage = garbage.to_str().expect("UTF-8").to_owned();
    let other = Pki::new();
    let missing = pki
        .dir
        .join("missing.pem")
        .to_str()
        .expect("UTF-8")
        .to_owned();
    let cases = [
        (missing.as_str(), pki.file("server.key"), "missing.pem"),
        (garbage.as_str(), pki.file("server.key"), "garbage.pem"),
        // A key file as the certificate, a certificate as the key.
        (
            &*pki.file("server.key"),
            pki.file("server.key"),
            "no certificate",
        ),
        (
            &*pki.file("server.pem"),
            pki.file("server.pem"),
            "no private key",
        ),
        // A key that does not match the certificate.
        (
            &*pki.file("server.pem"),
            other.file("server.key"),
            "cannot use",
        ),
    ];
    for (cert, key, why) in cases {
        let mut cmd = example("echo_server");
        cmd.args([
            "--addr",
            "127.0.0.1:0",
            "--tls-cert",
            cert,
            "--tls-key",
            &key,
        ]);
        let out = run_with_deadline(cmd, Duration::from_secs(10));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cert} {key}: {stderr}");
        assert!(stderr.contains(why), "{cert} {key}: {stderr}");
        assert_eq!(text(&out.stdout), "", "no readiness line");
    }
}

// (c) `openssl s_client`.

#[test]
fn openssl_s_client_verifies_the_chain_and_gets_a_line_back() {
    if !have_openssl() {
        eprintln!("skipped: openssl not found");
        return;
    }
    let pki = Pki::new();
    let server = tls_echo_server(&pki, &[]);
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &server.addr.to_string()])
        .args(["-CAfile", &pki.file("ca.pem"), "-servername", "localhost"])
        .args(["-verify_hostname", "localhost", "-verify_return_error"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn openssl");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let errors = thread::spawn(move || {
        let mut v = String::new();
        let _ = stderr.read_to_string(&mut v);
        v
    });
    let line = "hello from s_client";
    stdin
        .write_all(format!("{line}\n").as_bytes())
        .expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    while !lines.iter().any(|l| l == line) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no echo in 10 s: {lines:?}\n{}", errors.join().unwrap());
            }
        }
    }
    // EOF on stdin: s_client sends close_notify and exits.
    drop(stdin);
    let status = wait_with_deadline(&mut child, Duration::from_secs(10));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    reader.join().expect("stdout reader");
    lines.extend(rx.try_iter());
    let errors = errors.join().expect("stderr reader");
    let status = status.expect("s_client exits after stdin's EOF");
    assert!(status.success(), "{status:?}: {lines:?}\n{errors}");
    assert!(
        lines
            .iter()
            .any(|l| l.trim() == "Verify return code: 0 (ok)"),
        "{lines:?}\n{errors}"
    );
    // Both certificates of the chain were sent.
    assert!(lines.iter().any(|l| l.starts_with(" 1 s:")), "{lines:?}");
}

// (d) Robustness, EXAMPLES.md's TLS bullet.

#[test]
fn non_tls_bytes_and_truncation_close_the_connection_within_10_s() {
    let pki = Pki::new();
    let server = tls_echo_server(&pki, &[]);
    let junk: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\x16\x03\x01garbage",
        &[0xff, 0x00, 0x13, 0x80, 0x01, 0x02, 0x03, 0x04],
    ];
    for bytes in junk {
        let mut s = TcpStream::connect(server.addr).expect("connect");
        s.write_all(bytes).expect("write junk");
        let took = closed_within(&mut s, Duration::from_secs(10));
        eprintln!("{:?}: closed after {took:?}", text(bytes));
    }
    // Truncation: a TLS client that closes TCP without close_notify.
    let mut c = tls_connect(pki.pki.client_config(), server.addr);
    echo_once(&mut c, b"then a bare FIN");
    c.sock.shutdown(Shutdown::Write).expect("FIN");
    let took = closed_within(&mut c.sock, Duration::from_secs(10));
    eprintln!("truncation: closed after {took:?}");

    let mut c = tls_connect(pki.pki.client_config(), server.addr);
    echo_once(&mut c, b"still serving");
}

#[test]
fn half_a_client_hello_does_not_delay_another_clients_handshake() {
    let pki = Pki::new();
    // One worker thread: a handshake that blocked it would block everyone.
    let server = tls_echo_server(&pki, &["--threads", "1"]);
    let hello = client_hello(&pki.pki);
    let stalled: Vec<TcpStream> = (0..8)
        .map(|i| {
            let mut s = TcpStream::connect(server.addr).expect("connect");
            if i % 2 == 0 {
                s.write_all(&hello[..hello.len() / 2]).expect("half hello");
            }
            s
        })
        .collect();
    let started = Instant::now();
    let mut c = tls_connect(pki.pki.client_config(), server.addr);
    echo_once(&mut c, b"not delayed");
    let took = started.elapsed();
    eprintln!("handshake and echo beside 8 stalled peers: {took:?}");
    // The stalled peers hold their handshakes for the default 60 s.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    drop(stalled);
}

#[test]
fn handshake_timeout_drops_a_silent_peer() {
    let pki = Pki::new();
    let server = tls_echo_server(&pki, &["--tls-handshake-timeout", "1"]);
    let mut silent = TcpStream::connect(server.addr).expect("connect");
    let took = closed_within(&mut silent, Duration::from_secs(10));
    assert!(took >= Duration::from_millis(900), "closed early: {took:?}");
    eprintln!("silent peer dropped after {took:?} (timeout 1 s)");
    let mut c = tls_connect(pki.pki.client_config(), server.addr);
    echo_once(&mut c, b"after the timeout");
}

#[test]
fn client_offering_only_tls_1_0_and_1_1_is_refused() {
    if !have_python() {
        eprintln!("skipped: python3 not found");
        return;
    }
    let pki = Pki::new();
    let server = tls_echo_server(&pki, &[]);
    let mut cmd = python("tls_probe.py");
    cmd.args([
        "old-version",
        "--addr",
        &server.addr.to_string(),
        "--ca",
        &pki.file("ca.pem"),
    ]);
    let out = run_with_deadline(cmd, Duration::from_secs(30));
    let stdout = text(&out.stdout);
    if out.status.code() == Some(3) {
        eprintln!("skipped: {}", stdout.trim());
        return;
    }
    assert!(
        out.status.success() && stdout.starts_with("refused: "),
        "{:?}: {stdout}\n{}",
        out.status,
        text(&out.stderr)
    );
    eprintln!("{}", stdout.trim());
    let mut c = tls_connect(pki.pki.client_config(), server.addr);
    echo_once(&mut c, b"modern client");
}

#[test]
fn tls_peer_that_never_reads_cannot_grow_memory() {
    // EXAMPLES.md: a TLS peer sends 20 MB and reads nothing for 3 s; RSS
    // (and VmHWM) may grow by at most 16 MiB over the warmed-up baseline.
    let pki = Pki::new();
    let server = tls_echo_server(&pki, &["--threads", "2"]);
    let pid = server.child.id();
    let mut warm = tls_connect(pki.pki.client_config(), server.addr);
    echo_once(&mut warm, &payload(256 * 1024, 4));
    drop(warm);
    let (rss0, hwm0) = rss_kib(pid);

    let mut c = tls_connect(pki.pki.client_config(), server.addr);
    let window = Duration::from_secs(3);
    c.sock.set_write_timeout(Some(window)).expect("timeout");
    let started = Instant::now();
    let (sent, stopped) = send_without_reading(&mut c, 20 << 20);
    if let Some(e) = stopped {
        assert!(is_timeout(&e), "{e}");
    }
    // Nothing is read for the whole window, even if all 20 MB went out.
    if let Some(rest) = window.checked_sub(started.elapsed()) {
        thread::sleep(rest);
    }
    let (rss1, hwm1) = rss_kib(pid);
    eprintln!("sent {sent} bytes unread; RSS {rss0} -> {rss1} KiB, VmHWM {hwm0} -> {hwm1} KiB");
    let limit = 16 * 1024;
    assert!(
        rss1.saturating_sub(rss0) <= limit,
        "RSS grew {rss0} -> {rss1} KiB after {sent} bytes"
    );
    assert!(
        hwm1.saturating_sub(hwm0.max(rss0)) <= limit,
        "VmHWM grew {hwm0} -> {hwm1} KiB"
    );
}

#[test]
fn client_close_notify_is_answered_with_close_notify() {
    if !have_python() {
        eprintln!("skipped: python3 not found");
        return;
    }
    let pki = Pki::new();
    let server = tls_echo_server(&pki, &[]);
    let mut cmd = python("tls_probe.py");
    cmd.args([
        "unwrap",
        "--addr",
        &server.addr.to_string(),
        "--ca",
        &pki.file("ca.pem"),
    ]);
    let started = Instant::now();
    let out = run_with_deadline(cmd, Duration::from_secs(30));
    let stdout = text(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok "),
        "{:?}: {stdout}\n{}",
        out.status,
        text(&out.stderr)
    );
    eprintln!(
        "unwrap() returned ({}) in {:?}",
        stdout.trim(),
        started.elapsed()
    );
}

#[test]
fn exits_zero_on_sigterm_mid_handshake_and_mid_transfer() {
    let pki = Pki::new();
    let mut server = tls_echo_server(&pki, &[]);
    // A peer in its handshake (silent), and a busy client that streams
    // without reading, so the server is mid-transfer with reading paused.
    let _handshaking = TcpStream::connect(server.addr).expect("connect");
    let mut busy = tls_connect(pki.pki.client_config(), server.addr);
    busy.sock
        .set_write_timeout(Some(Duration::from_secs(1)))
        .expect("write timeout");
    let (tx, rx) = mpsc::channel();
    let writer = thread::spawn(move || {
        let _ = tx.send(send_without_reading(&mut busy, usize::MAX));
        busy
    });
    // Wait until the server has stopped reading (its echo is queued: a
    // write of ours has been stuck for 1 s), not for a fixed time. With an
    // empty write buffer on the server this case would hit the bug of
    // `exits_zero_on_sigterm_with_an_idle_tls_client`.
    let (sent, e) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server stops reading");
    assert!(e.as_ref().is_some_and(is_timeout), "{e:?}");
    let started = Instant::now();
    let status = server.signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    eprintln!(
        "exited 0 after {:?}, {sent} bytes into the transfer",
        started.elapsed()
    );
    drop(writer.join().expect("writer"));
}

/// `echo_server --tls-*`, one TLS client that echoes a line and then stays
/// idle without answering `close_notify`, SIGTERM: the server exits 0
/// within 5 s. `Server::shutdown(2 s)` calls `close()` (`close_notify`, then
/// the wait for the peer's), then `abort_clients()` at the deadline, which
/// cuts that wait short (it used to wait for the 30 s TLS shutdown timeout).
#[test]
fn exits_zero_on_sigterm_with_an_idle_tls_client() {
    let pki = Pki::new();
    let mut server = tls_echo_server(&pki, &[]);
    let mut idle = tls_connect(pki.pki.client_config(), server.addr);
    echo_once(&mut idle, b"idle from now on");
    let started = Instant::now();
    let status = server.signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    eprintln!("exited 0 after {:?}", started.elapsed());
    // The idle client's connection was closed (close_notify, FIN or RST).
    let mut rest = Vec::new();
    if let Err(e) = idle.read_to_end(&mut rest) {
        assert!(!is_timeout(&e), "idle connection still open: {e}");
    }
}

#[test]
fn descriptors_return_after_junk_tls_connections() {
    let pki = Pki::new();
    let server = tls_echo_server(&pki, &[]);
    let pid = server.child.id();
    let mut warm = tls_connect(pki.pki.client_config(), server.addr);
    echo_once(&mut warm, b"warm");
    drop(warm);
    let before = open_fds(pid);
    let hello = client_hello(&pki.pki);
    for i in 0..60u32 {
        match i % 5 {
            0 => drop(TcpStream::connect(server.addr).expect("connect")),
            1 => {
                let mut s = TcpStream::connect(server.addr).expect("connect");
                let _ = s.write_all(b"\x16\x03\x01garbage");
            }
            2 => {
                let mut s = TcpStream::connect(server.addr).expect("connect");
                let _ = s.write_all(&hello[..hello.len() / 2]);
                socket2::SockRef::from(&s)
                    .set_linger(Some(Duration::ZERO))
                    .expect("linger");
            }
            3 => {
                // Truncation after the handshake.
                let mut c = tls_connect(pki.pki.client_config(), server.addr);
                echo_once(&mut c, b"bare FIN");
            }
            _ => {
                // A clean close: close_notify both ways.
                let mut c = tls_connect(pki.pki.client_config(), server.addr);
                echo_once(&mut c, b"clean");
                close_cleanly(c);
            }
        }
    }
    let ok = eventually(Duration::from_secs(10), || {
        open_fds(pid).abs_diff(before) <= 3
    });
    assert!(ok, "fds before {before}, now {}", open_fds(pid));
    let mut c = tls_connect(pki.pki.client_config(), server.addr);
    echo_once(&mut c, b"alive");
}
