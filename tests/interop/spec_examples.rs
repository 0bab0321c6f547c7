//! The spec's TCP echo server and client, ours against the Python originals
//! (stock asyncio) in every combination: the client prints the same lines.

use std::time::Duration;

use crate::support::{Server, example, have_python, python, run_with_deadline};

const MESSAGE: &str = "Hello World!";

fn expected_lines(message: &str) -> String {
    format!(
        "Data sent: '{message}'\nData received: '{message}'\nThe server closed the connection\n"
    )
}

fn client_output(mut client: std::process::Command, server: &Server, message: &str) -> String {
    client.args(["--addr", &server.addr.to_string(), "--message", message]);
    let out = run_with_deadline(client, Duration::from_secs(20));
    assert!(
        out.status.success(),
        "client failed: {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn rust_server() -> Server {
    let mut cmd = example("tcp_echo_server");
    cmd.args(["--addr", "127.0.0.1:0"]);
    Server::start(cmd)
}

fn python_server() -> Server {
    let mut cmd = python("tcp_echo_server.py");
    cmd.args(["--addr", "127.0.0.1:0"]);
    Server::start(cmd)
}

#[test]
fn rust_client_against_rust_server_prints_the_spec_lines() {
    let server = rust_server();
    let out = client_output(example("tcp_echo_client"), &server, MESSAGE);
    assert_eq!(out, expected_lines(MESSAGE));
}

#[test]
fn python_client_against_rust_server_prints_the_same_as_against_python_server() {
    if !have_python() {
        eprintln!("skipped: python3 not found");
        return;
    }
    let theirs = python_server();
    let reference = client_output(python("tcp_echo_client.py"), &theirs, MESSAGE);
    assert_eq!(reference, expected_lines(MESSAGE), "the Python pair itself");

    let ours = rust_server();
    let out = client_output(python("tcp_echo_client.py"), &ours, MESSAGE);
    assert_eq!(out, reference);
}

#[test]
fn rust_client_against_python_server_prints_the_same_as_python_client() {
    if !have_python() {
        eprintln!("skipped: python3 not found");
        return;
    }
    let theirs = python_server();
    let reference = client_output(python("tcp_echo_client.py"), &theirs, "interop test 42");
    let out = client_output(example("tcp_echo_client"), &theirs, "interop test 42");
    assert_eq!(out, reference);
    assert_eq!(out, expected_lines("interop test 42"));
}

#[test]
fn client_quotes_like_python_repr() {
    if !have_python() {
        eprintln!("skipped: python3 not found");
        return;
    }
    // A single quote makes Python's repr() switch to double quotes.
    let theirs = python_server();
    let msg = "it's here";
    let reference = client_output(python("tcp_echo_client.py"), &theirs, msg);
    let out = client_output(example("tcp_echo_client"), &theirs, msg);
    assert_eq!(out, reference);
    assert!(out.starts_with("Data sent: \"it's here\"\n"), "{out}");
}

#[test]
fn client_exits_non_zero_when_refused() {
    // Bind then drop a listener to find a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = example("tcp_echo_client");
    cmd.args(["--addr", &format!("127.0.0.1:{port}")]);
    let started = std::time::Instant::now();
    let out = run_with_deadline(cmd, Duration::from_secs(5));
    assert!(!out.status.success());
    assert!(
        out.status.code().is_some(),
        "exited by a signal: {:?}",
        out.status
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn tcp_echo_server_exits_zero_on_sigterm_and_sigint() {
    for sig in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ] {
        let mut server = rust_server();
        let status = server.signal_and_wait(sig, Duration::from_secs(5));
        assert!(status.success(), "{sig}: {status:?}");
    }
}

#[test]
fn rust_client_with_write_eof_against_persistent_echo_server() {
    // The README's first command: echo_server and tcp_echo_client --write-eof.
    let mut cmd = example("echo_server");
    cmd.args(["--addr", "127.0.0.1:0", "--threads", "1"]);
    let server = Server::start(cmd);
    let mut client = example("tcp_echo_client");
    client.arg("--write-eof");
    let out = client_output(client, &server, MESSAGE);
    assert_eq!(out, expected_lines(MESSAGE));
}

#[test]
fn socketpair_demo_prints_received_abc_and_exits_0_five_times() {
    // The spec's "Connecting Existing Sockets" example, on a socketpair.
    for run in 0..5 {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_socketpair_demo"));
        cmd.env("RUST_LOG", "warn");
        let out = run_with_deadline(cmd, Duration::from_secs(5));
        assert!(
            out.status.success(),
            "run {run}: {:?}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "Received: abc\n",
            "run {run}"
        );
    }
}
