//! Helpers: start programs, read their readiness line, bound every wait.

use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

/// Path of a Python peer script in `tests/interop/python/`.
pub(crate) fn python_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/interop/python")
        .join(name)
}

/// Whether `python3` is runnable; tests needing it print why they skip.
pub(crate) fn have_python() -> bool {
    Command::new("python3")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A running server program, killed (SIGKILL) when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    _stdout: Option<thread::JoinHandle<()>>,
}

impl Server {
    /// Starts `cmd` and waits (up to 10 s) for its `listening on HOST:PORT`
    /// line. The rest of stdout is drained in a thread so a chatty server
    /// never blocks.
    pub(crate) fn start(cmd: Command) -> Self {
        Self::start_logging_to(cmd, Stdio::null())
    }

    /// As [`start`](Self::start), with the server's stderr sent to `stderr`.
    pub(crate) fn start_logging_to(mut cmd: Command, stderr: impl Into<Stdio>) -> Self {
        cmd.stdout(Stdio::piped())
            .stderr(stderr)
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let reader = thread::spawn(move || {
            let mut lines = BufReader::new(stdout);
            let mut first = String::new();
            let _ = lines.read_line(&mut first);
            let _ = tx.send(first);
            drain(lines);
        });
        let first = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server printed no readiness line in 10 s");
        let addr = first
            .strip_prefix("listening on ")
            .and_then(|s| s.trim_end().parse().ok())
            .unwrap_or_else(|| panic!("bad readiness line {first:?}"));
        Self {
            child,
            addr,
            _stdout: Some(reader),
        }
    }

    /// Sends `sig` and waits up to `limit` for the exit status.
    pub(crate) fn signal_and_wait(
        &mut self,
        sig: nix::sys::signal::Signal,
        limit: Duration,
    ) -> ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"));
        nix::sys::signal::kill(pid, sig).expect("send signal");
        wait_with_deadline(&mut self.child, limit)
            .unwrap_or_else(|| panic!("no exit within {limit:?} after {sig}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(mut r: BufReader<ChildStdout>) {
    let mut sink = [0u8; 4096];
    while matches!(r.read(&mut sink), Ok(n) if n > 0) {}
}

/// Polls `child` for its exit until `limit` has passed.
pub(crate) fn wait_with_deadline(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `cmd` to completion with a time limit; kills it and panics if it
/// overruns.
pub(crate) fn run_with_deadline(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let mut child = cmd.spawn().expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let Some(status) = wait_with_deadline(&mut child, limit) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{cmd:?} did not finish within {limit:?}");
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Our example program `name` (built by cargo for this test).
pub(crate) fn example(name: &str) -> Command {
    let path = match name {
        "tcp_echo_server" => env!("CARGO_BIN_EXE_tcp_echo_server"),
        "tcp_echo_client" => env!("CARGO_BIN_EXE_tcp_echo_client"),
        "echo_server" => env!("CARGO_BIN_EXE_echo_server"),
        "tls_echo_client" => env!("CARGO_BIN_EXE_tls_echo_client"),
        other => panic!("unknown example {other}"),
    };
    let mut cmd = Command::new(path);
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// `python3 tests/interop/python/<script>`.
pub(crate) fn python(script: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg(python_script(script));
    cmd
}

/// A deterministic pseudo-random payload (xorshift), so a dropped, duplicated
/// or reordered byte changes the checksum.
pub(crate) fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// FNV-1a 64, a cheap checksum for comparing large transfers.
pub(crate) fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
