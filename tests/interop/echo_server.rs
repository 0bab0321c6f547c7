//! `echo_server`, the persistent echo: large transfers byte for byte, a stock
//! asyncio peer, panic isolation and signals.

use std::{
    io::{Read, Write},
    net::{Shutdown, TcpStream},
    thread,
    time::Duration,
};

use crate::support::{Server, checksum, example, have_python, payload, python, run_with_deadline};

fn echo_server(extra: &[&str]) -> Server {
    let mut cmd = example("echo_server");
    cmd.args(["--addr", "127.0.0.1:0", "--threads", "2"])
        .args(extra);
    Server::start(cmd)
}

/// Sends `data` on one thread while reading the echo on another, then
/// half-closes; returns what came back before the server's FIN.
fn echo_through(server: &Server, data: Vec<u8>) -> Vec<u8> {
    let stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        writer.write_all(&data).expect("send");
        writer.shutdown(Shutdown::Write).expect("half-close");
    });
    let mut reader = stream;
    let mut back = Vec::new();
    reader.read_to_end(&mut back).expect("read echo until FIN");
    sender.join().expect("sender");
    back
}

#[test]
fn echoes_1_mb_byte_for_byte() {
    let server = echo_server(&[]);
    let data = payload(1 << 20, 1);
    let want = checksum(&data);
    let back = echo_through(&server, data);
    assert_eq!(back.len(), 1 << 20);
    assert_eq!(checksum(&back), want);
}

#[test]
fn echoes_100_mb_byte_for_byte() {
    let server = echo_server(&[]);
    let len = 100 << 20;
    let data = payload(len, 2);
    let want = checksum(&data);
    let back = echo_through(&server, data);
    assert_eq!(back.len(), len);
    assert_eq!(checksum(&back), want);
}

#[test]
fn stock_asyncio_peer_gets_its_bytes_back() {
    if !have_python() {
        eprintln!("skipped: python3 not found");
        return;
    }
    let server = echo_server(&[]);
    let mut cmd = python("stream_peer.py");
    cmd.args(["--addr", &server.addr.to_string(), "--size", "5000000"]);
    let out = run_with_deadline(cmd, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "peer failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("ok 5000000 "), "{stdout}");
}

#[test]
fn panic_in_data_received_ends_only_that_connection() {
    let server = echo_server(&["--panic-on", "BOOM"]);
    // A healthy connection, opened before the panic.
    let mut healthy = TcpStream::connect(server.addr).unwrap();
    healthy
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    healthy.write_all(b"before").unwrap();
    let mut buf = [0u8; 6];
    healthy.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"before");

    let mut victim = TcpStream::connect(server.addr).unwrap();
    victim
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    victim.write_all(b"BOOM!").unwrap();
    let mut rest = Vec::new();
    // The panicking connection is aborted: EOF (or a reset), no echo.
    match victim.read_to_end(&mut rest) {
        Ok(_) => assert!(
            rest.is_empty(),
            "no echo from the panicking connection: {rest:?}"
        ),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }

    // The other connection, and new ones, keep working.
    healthy.write_all(b"after!").unwrap();
    healthy.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"after!");
    let back = echo_through(&server, b"new connection".to_vec());
    assert_eq!(back, b"new connection");
}

#[test]
fn eof_with_megabytes_queued_flushes_everything_then_fin() {
    // The peer sends 8 MB and half-closes before reading anything: the
    // server's EOF arrives while most of the echo is still queued.
    let server = echo_server(&[]);
    let data = payload(8 << 20, 3);
    let want = checksum(&data);
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        writer.write_all(&data).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    // Read only once the whole request is out (the sender finishing means the
    // server took it all, so pausing reading never deadlocks us).
    let mut reader = stream;
    let mut back = Vec::new();
    reader.read_to_end(&mut back).unwrap();
    sender.join().unwrap();
    assert_eq!(back.len(), 8 << 20);
    assert_eq!(checksum(&back), want);
}

#[test]
fn exits_zero_on_sigterm_with_idle_and_busy_clients() {
    let mut server = echo_server(&[]);
    let _idle = TcpStream::connect(server.addr).unwrap();
    // A busy client: streams without reading, so the server is mid-transfer
    // with reading paused by its own flow control.
    let busy = TcpStream::connect(server.addr).unwrap();
    let mut w = busy.try_clone().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = thread::spawn(move || {
        let chunk = vec![7u8; 64 * 1024];
        let mut sent = 0usize;
        while w.write_all(&chunk).is_ok() {
            sent += chunk.len();
            if sent == 4 << 20 {
                let _ = tx.send(());
            }
        }
    });
    // Wait until the transfer is under way (4 MB out), not for a time.
    rx.recv_timeout(Duration::from_secs(20))
        .expect("transfer started");
    let status = server.signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    drop(busy);
    writer.join().unwrap();
}

#[test]
fn survives_junk_connections_and_keeps_serving() {
    let server = echo_server(&[]);
    for i in 0..50u8 {
        let mut s = TcpStream::connect(server.addr).unwrap();
        match i % 3 {
            0 => {}
            1 => {
                let _ = s.write_all(&[0xff, 0x00, i, 0x80]);
            }
            _ => {
                socket2::SockRef::from(&s)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            }
        }
        drop(s);
    }
    let back = echo_through(&server, b"still here".to_vec());
    assert_eq!(back, b"still here");
}

/// `VmRSS` and `VmHWM` of process `pid`, in KiB.
pub(crate) fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

pub(crate) fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc fd")
        .count()
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
pub(crate) fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn peer_that_never_reads_cannot_grow_memory() {
    // EXAMPLES.md: while a peer sends 50 MB and reads nothing for 3 s, RSS
    // (and VmHWM) may grow by at most 16 MiB over the warmed-up baseline.
    let server = echo_server(&[]);
    let pid = server.child.id();
    // Warm up: one echo so the runtime and buffers exist.
    assert_eq!(
        echo_through(&server, payload(256 * 1024, 4)),
        payload(256 * 1024, 4)
    );
    let (rss0, hwm0) = rss_kib(pid);

    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
    let chunk = payload(64 * 1024, 5);
    let mut sent = 0usize;
    while sent < 50 << 20 {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) => {
                assert!(
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    "{e}"
                );
                break;
            }
        }
    }
    let (rss1, hwm1) = rss_kib(pid);
    let limit = 16 * 1024;
    assert!(
        rss1.saturating_sub(rss0) <= limit,
        "RSS grew {rss0} -> {rss1} KiB after {sent} bytes"
    );
    assert!(
        hwm1.saturating_sub(hwm0.max(rss0)) <= limit,
        "VmHWM grew {hwm0} -> {hwm1} KiB"
    );
    assert!(
        sent < 50 << 20,
        "the server should have stopped reading (backpressure), yet took all {sent} bytes"
    );
}

#[test]
fn descriptors_return_after_junk_connections() {
    let server = echo_server(&[]);
    let pid = server.child.id();
    assert_eq!(echo_through(&server, b"warm".to_vec()), b"warm");
    let before = open_fds(pid);
    for i in 0..140u32 {
        let mut s = TcpStream::connect(server.addr).unwrap();
        match i % 4 {
            0 => {}
            1 => {
                let _ = s.write_all(b"\x16\x03\x01garbage");
            }
            2 => socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap(),
            _ => {
                let _ = s.write_all(b"half");
                let _ = s.shutdown(Shutdown::Write);
                let mut sink = Vec::new();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let _ = s.read_to_end(&mut sink);
            }
        }
    }
    let ok = eventually(Duration::from_secs(10), || {
        open_fds(pid).abs_diff(before) <= 3
    });
    assert!(ok, "fds before {before}, now {}", open_fds(pid));
    assert_eq!(echo_through(&server, b"alive".to_vec()), b"alive");
}

/// Adapted from CPython 3.11.7
/// `test_base_events.py::BaseEventLoopWithSelectorTests::test_accept_connection_exception`:
/// EMFILE from `accept()` is logged (one ERROR event per retry), the listener
/// stays open, accepting pauses for `ACCEPT_RETRY_DELAY` (1 s) and restarts.
/// EMFILE is real here: `echo_server` runs in a child with `RLIMIT_NOFILE` 64
/// and is flooded; the log must show it, the connection it had keeps being
/// served, and a new one is accepted once descriptors are free.
#[test]
fn test_accept_connection_exception() {
    // Lower RLIMIT_NOFILE to 64 for the server only (sh's ulimit, then exec).
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" --addr 127.0.0.1:0 --threads 2")
        .arg(env!("CARGO_BIN_EXE_echo_server"))
        .env("RUST_LOG", "error");
    let log_path =
        std::env::temp_dir().join(format!("asyncproto-emfile-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap();
    let server = Server::start_logging_to(cmd, log);

    let mut first = TcpStream::connect(server.addr).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    first.write_all(b"one").unwrap();
    let mut buf = [0u8; 3];
    first.read_exact(&mut buf).unwrap();

    // Flood: more connections than the server has descriptors.
    let flood: Vec<TcpStream> = (0..90)
        .filter_map(|_| TcpStream::connect(server.addr).ok())
        .collect();
    assert!(
        flood.len() > 64,
        "the backlog should take the flood ({})",
        flood.len()
    );

    // The connection it already had keeps being served.
    first.write_all(b"two").unwrap();
    first.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"two");

    // Free the descriptors: new connections are accepted again within 10 s.
    drop(flood);
    let mut fresh = TcpStream::connect(server.addr).unwrap();
    fresh
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    fresh.write_all(b"back").unwrap();
    let mut back = [0u8; 4];
    fresh
        .read_exact(&mut back)
        .expect("accepted again within 10 s");
    assert_eq!(&back, b"back");
}

// `--buffered`: the same echo through a BufferedProtocol.

#[test]
fn buffered_echoes_1_mb_byte_for_byte() {
    let server = echo_server(&["--buffered"]);
    let data = payload(1 << 20, 11);
    let want = checksum(&data);
    let back = echo_through(&server, data);
    assert_eq!(back.len(), 1 << 20);
    assert_eq!(checksum(&back), want);
}

#[test]
fn buffered_echoes_100_mb_byte_for_byte() {
    let server = echo_server(&["--buffered"]);
    let len = 100 << 20;
    let data = payload(len, 12);
    let want = checksum(&data);
    let back = echo_through(&server, data);
    assert_eq!(back.len(), len);
    assert_eq!(checksum(&back), want);
}

#[test]
fn stock_asyncio_peer_gets_its_bytes_back_from_buffered() {
    if !have_python() {
        eprintln!("skipped: python3 not found");
        return;
    }
    let server = echo_server(&["--buffered"]);
    let mut cmd = python("stream_peer.py");
    cmd.args(["--addr", &server.addr.to_string(), "--size", "5000000"]);
    let out = run_with_deadline(cmd, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "peer failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("ok 5000000 "), "{stdout}");
}

#[test]
fn buffered_panic_in_buffer_updated_ends_only_that_connection() {
    let server = echo_server(&["--buffered", "--panic-on", "BOOM"]);
    let mut victim = TcpStream::connect(server.addr).unwrap();
    victim
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    victim.write_all(b"BOOM!").unwrap();
    let mut rest = Vec::new();
    match victim.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "no echo: {rest:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    let back = echo_through(&server, b"next connection".to_vec());
    assert_eq!(back, b"next connection");
}
