#!/usr/bin/env bash
# Soak test: `scripts/soak.sh [SECONDS]` (default 600), from anywhere.
#
# Builds the release `echo_server` and `soak` (tools/soak), starts
# `echo_server --addr 127.0.0.1:0` (loopback only), and runs `soak` against it
# for SECONDS with 200 churning connections (half-closes with verified echo
# and FIN, RSTs mid-stream, abrupt closes). Records the server's RSS (VmRSS)
# and open-fd count before and after, and prints a summary.
#
# Fails (exit 1) on a checksum mismatch (or any other soak failure), if the
# server dies, or if its fd count does not come back to within 3 of the
# start within 10 s after the churn. Extra arguments after SECONDS go to
# `soak` (e.g. `--conns 50 --seed 1`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS_TO_RUN="${1:-600}"
shift || true
if ! [[ "$SECONDS_TO_RUN" =~ ^[0-9]+$ ]]; then
    echo "usage: scripts/soak.sh [SECONDS] [soak args...]" >&2
    exit 2
fi

log() {
    printf '[soak.sh] %s\n' "$*"
}

log "building release echo_server and soak"
cargo build --release --bin echo_server --bin soak
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
ECHO_SERVER="$TARGET_DIR/release/echo_server"
SOAK="$TARGET_DIR/release/soak"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# The server's stdout goes to a file: its first line is the readiness line;
# diagnostics go to stderr (kept for the failure report).
RUST_LOG="${RUST_LOG:-warn}" "$ECHO_SERVER" --addr 127.0.0.1:0 \
    >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!

ADDR=""
for _ in $(seq 100); do
    if line="$(head -n 1 "$WORK/server.out" 2>/dev/null)" && [[ "$line" == "listening on "* ]]; then
        ADDR="${line#listening on }"
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
if [[ -z "$ADDR" ]]; then
    log "FAIL: echo_server did not print its readiness line within 10 s"
    cat "$WORK/server.err" >&2 || true
    exit 1
fi
log "echo_server pid $SERVER_PID listening on $ADDR"

rss_kib() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"
}
hwm_kib() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status"
}
fd_count() {
    find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l
}

RSS_START="$(rss_kib)"
FD_START="$(fd_count)"
log "start: VmRSS ${RSS_START} KiB, fds ${FD_START}"

log "running soak for ${SECONDS_TO_RUN} s"
SOAK_RC=0
"$SOAK" --addr "$ADDR" --duration "$SECONDS_TO_RUN" "$@" >"$WORK/soak.json" || SOAK_RC=$?
SOAK_JSON="$(cat "$WORK/soak.json")"

FAIL=0
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    wait "$SERVER_PID" && status=$? || status=$?
    log "FAIL: echo_server died during the soak (status $status)"
    tail -n 50 "$WORK/server.err" >&2 || true
    SERVER_PID=""
    echo "$SOAK_JSON"
    exit 1
fi

RSS_END="$(rss_kib)"
HWM_END="$(hwm_kib)"
# The churn has ended on the client side; closes may still be in flight on
# the server's side: wait up to 10 s for the fds to come back.
FD_END="$(fd_count)"
for _ in $(seq 100); do
    FD_END="$(fd_count)"
    if ((FD_END <= FD_START + 3)); then
        break
    fi
    sleep 0.1
done
RSS_DRAINED="$(rss_kib)"

log "end:   VmRSS ${RSS_END} KiB (after drain ${RSS_DRAINED} KiB, peak VmHWM ${HWM_END} KiB), fds ${FD_END}"
log "soak result: $SOAK_JSON"

if ((SOAK_RC != 0)); then
    log "FAIL: soak exited with status $SOAK_RC (1 = checksum mismatch)"
    FAIL=1
fi
if ((FD_END > FD_START + 3)); then
    log "FAIL: server fds ${FD_START} -> ${FD_END} (more than 3 above the start after 10 s)"
    FAIL=1
fi

# Contract check (EXAMPLES.md): SIGTERM ends the server with status 0 in 5 s.
kill -TERM "$SERVER_PID"
EXIT_STATUS="still running"
for _ in $(seq 50); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        wait "$SERVER_PID" && EXIT_STATUS=0 || EXIT_STATUS=$?
        break
    fi
    sleep 0.1
done
SERVER_PID_DONE="$SERVER_PID"
if [[ "$EXIT_STATUS" == "still running" ]]; then
    log "warning: echo_server ($SERVER_PID_DONE) still running 5 s after SIGTERM"
else
    SERVER_PID=""
    if [[ "$EXIT_STATUS" != 0 ]]; then
        log "warning: echo_server exited with status $EXIT_STATUS after SIGTERM"
    fi
fi

echo "SUMMARY seconds=${SECONDS_TO_RUN} rss_start_kib=${RSS_START} rss_end_kib=${RSS_END}" \
    "rss_drained_kib=${RSS_DRAINED} hwm_kib=${HWM_END} fds_start=${FD_START} fds_end=${FD_END}" \
    "server_exit=${EXIT_STATUS// /_} soak_rc=${SOAK_RC}"
echo "SOAK $SOAK_JSON"
if ((FAIL)); then
    log "FAILED"
    exit 1
fi
log "passed"
