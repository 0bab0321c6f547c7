#!/usr/bin/env bash
# asyncproto's benchmark suite (issue #4): echo_server against a hand-written
# raw Tokio echo server, stock asyncio and uvloop, side by side in one run.
#
#   bench/run.sh [--quick] [--debug] [--reps N] [--out FILE] [--servers "a b c"]
#                [--only plain|tls]
#
# - builds the release binaries (CARGO_TARGET_DIR, default target/bench;
#   --debug: the dev profile instead, e.g. to reuse CI's test build with
#   CARGO_TARGET_DIR=target — only sensible with --quick);
# - creates target/bench/venv and pip-installs uvloop into it (the uvloop rows
#   are skipped, with the reason printed, if that fails);
# - for each workload, in two placements — pinned (server `taskset -c 0` with
#   `--threads 1`, load generator `taskset -c 1` with `--threads 1`) and
#   unpinned (all cores for both) — runs the servers interleaved
#   (A B C D A B C D …), each measurement --reps times (default 3), a fresh
#   server process for every measurement;
# - the load generator verifies every echoed byte and reads the server's CPU
#   time (/proc/PID/stat) over each measured window; any failure fails the run;
# - the "16 writes" workloads start every server with `--reply-writes 16`:
#   each chunk is echoed with 16 small writes (raw Tokio: 16 `write_all` into
#   a `BufWriter`, then one flush);
# - writes medians, spreads and ratios against raw Tokio as Markdown into
#   docs/performance.md (between the `bench/run.sh` markers), with the date,
#   the command, nproc and the kernel.
#
# TLS section (after the plain one; `--only tls` runs it alone, `--only
# plain` skips it): generates a throw-away ECDSA P-256 CA and a leaf for
# localhost/127.0.0.1 with `openssl` into $CARGO_TARGET_DIR/run/tls (skipped,
# with the reason printed, if `openssl` is missing or fails), then runs
# `echo_server --tls-cert … --tls-key …` against `raw_tokio_echo --tls-*`
# (the hand-written tokio-rustls loop) interleaved the same way, the load
# generator with `--tls-ca` (full handshakes, certificate verified, every
# byte verified); ratios against raw tokio-rustls go between the
# `bench/run.sh TLS` markers.
#
# --quick: one repetition of small, short workloads (a few seconds in all),
# written to target/bench/performance-quick.md: a smoke test that the harness
# works (CI), with one short TLS rr step. It asserts nothing about timings.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CMDLINE="bench/run.sh${*:+ $*}"

QUICK=0
PROFILE=release
REPS=3
OUT=""
SERVERS="asyncproto raw_tokio asyncio uvloop"
ONLY=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --debug) PROFILE=debug ;;
        --reps) REPS=$2; shift ;;
        --out) OUT=$2; shift ;;
        --servers) SERVERS=$2; shift ;;
        --only)
            case $2 in plain|tls) ONLY=$2 ;; *) echo "run.sh: --only plain|tls" >&2; exit 2 ;; esac
            shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/bench}"
BIN="$CARGO_TARGET_DIR/$PROFILE"
VENV="$ROOT/target/bench/venv"
WORK="$CARGO_TARGET_DIR/run"
mkdir -p "$WORK"
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
NOTES="$WORK/notes.txt"
: > "$NOTES"
TLS_RESULTS="$WORK/results-tls.jsonl"
: > "$TLS_RESULTS"
TLS_NOTES="$WORK/notes-tls.txt"
: > "$TLS_NOTES"
RUN_PLAIN=1
RUN_TLS=1
[[ $ONLY == tls ]] && RUN_PLAIN=0
[[ $ONLY == plain ]] && RUN_TLS=0

if [[ $QUICK == 1 ]]; then
    REPS=1
    OUT=${OUT:-$CARGO_TARGET_DIR/performance-quick.md}
    WARMUP=0.1
    DURATION=0.3
    HOLD=0.2
    # name mode conns size placements [server arguments]
    WORKLOADS=(
        "rr 64 B x 1|rr|1|64|pinned unpinned"
        "rr 64 B x 10|rr|10|64|pinned"
        "rr 64 B x 1, 16 writes|rr|1|64|pinned|--reply-writes 16"
        "stream 64 KiB x 2|stream|2|65536|pinned"
        "connect x 4|connect|4|64|pinned"
        "idle x 200|idle|200|64|pinned"
    )
    # One short step: proves the TLS harness (certificates, both servers,
    # the verifying TLS client) works.
    TLS_WORKLOADS=(
        "rr 1 KiB x 1|rr|1|1024|unpinned"
    )
else
    OUT=${OUT:-$ROOT/docs/performance.md}
    WARMUP=1
    DURATION=3
    HOLD=1
    WORKLOADS=(
        "rr 64 B x 1|rr|1|64|pinned unpinned"
        "rr 64 B x 50|rr|50|64|pinned unpinned"
        "rr 1 KiB x 1|rr|1|1024|pinned unpinned"
        "rr 1 KiB x 50|rr|50|1024|pinned unpinned"
        "rr 64 B x 1, 16 writes|rr|1|64|pinned unpinned|--reply-writes 16"
        "rr 64 B x 50, 16 writes|rr|50|64|pinned unpinned|--reply-writes 16"
        "stream 64 KiB x 1|stream|1|65536|pinned unpinned"
        "stream 64 KiB x 8|stream|8|65536|pinned unpinned"
        "connect x 8|connect|8|64|pinned unpinned"
        "idle x 1,000|idle|1000|64|pinned"
        "idle x 10,000|idle|10000|64|pinned"
    )
    TLS_WORKLOADS=(
        "rr 1 KiB x 1|rr|1|1024|pinned unpinned"
        "rr 1 KiB x 50|rr|50|1024|pinned unpinned"
        "stream 64 KiB x 1|stream|1|65536|pinned unpinned"
        "stream 64 KiB x 8|stream|8|65536|pinned unpinned"
        "connect x 8|connect|8|64|pinned unpinned"
        "idle x 1,000|idle|1000|64|pinned"
    )
fi

note() {
    echo "$*" | tee -a "$NOTES" >&2
}

tls_note() {
    echo "TLS: $*" >&2
    echo "$*" >> "$TLS_NOTES"
}

echo "==> $PROFILE build (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)" >&2
profile_flag=(--release)
[[ $PROFILE == debug ]] && profile_flag=()
cargo build "${profile_flag[@]}" -q -p asyncproto-loadgen -p asyncproto-examples \
    --bin loadgen --bin raw_tokio_echo --bin echo_server >&2

# Idle mode holds thousands of sockets in both processes.
HARD=$(ulimit -Hn)
if [[ $HARD == unlimited ]]; then HARD=1048576; fi
ulimit -n "$HARD"
MAXCONN=$((HARD - 100))

python_ok=1
if ! command -v python3 >/dev/null 2>&1; then
    python_ok=0
    note "skipped asyncio and uvloop: python3 not found"
fi

uvloop_ok=0
if [[ $python_ok == 1 && $RUN_PLAIN == 1 && " $SERVERS " == *" uvloop "* ]]; then
    if [[ -x $VENV/bin/python ]] && "$VENV/bin/python" -c 'import uvloop' 2>/dev/null; then
        uvloop_ok=1
    else
        echo "==> creating $VENV and installing uvloop" >&2
        if ! out=$(python3 -m venv "$VENV" 2>&1); then
            note "skipped uvloop: python3 -m venv failed: $(echo "$out" | tail -1)"
        elif ! out=$("$VENV/bin/pip" install -q --disable-pip-version-check uvloop 2>&1); then
            note "skipped uvloop: pip install uvloop failed: $(echo "$out" | tail -1)"
        elif ! "$VENV/bin/python" -c 'import uvloop' 2>/dev/null; then
            note "skipped uvloop: uvloop does not import after installing"
        else
            uvloop_ok=1
        fi
    fi
fi

ACTIVE=()
for s in $SERVERS; do
    case $s in
        asyncproto|raw_tokio) ACTIVE+=("$s") ;;
        asyncio) [[ $python_ok == 1 ]] && ACTIVE+=("$s") ;;
        uvloop) [[ $uvloop_ok == 1 ]] && ACTIVE+=("$s") ;;
        *) echo "run.sh: unknown server $s" >&2; exit 2 ;;
    esac
done
if [[ " ${ACTIVE[*]} " != *" raw_tokio "* ]]; then
    note "raw_tokio is not in --servers: no ratios"
fi
if [[ $uvloop_ok == 1 ]]; then
    note "uvloop $("$VENV/bin/python" -c 'import uvloop; print(uvloop.__version__)') on $("$VENV/bin/python" --version 2>&1)"
fi
if [[ $python_ok == 1 ]]; then
    note "asyncio: $(python3 --version 2>&1)"
fi

server_cmd() {
    case $1 in
        asyncproto) echo "$BIN/echo_server" ;;
        raw_tokio) echo "$BIN/raw_tokio_echo" ;;
        asyncio) echo "python3 $ROOT/bench/asyncio_echo.py" ;;
        uvloop) echo "$VENV/bin/python $ROOT/bench/asyncio_echo.py --uvloop" ;;
    esac
}

SPID=""
SADDR=""
# start_server NAME PLACEMENT [ARGS]: sets SPID and SADDR.
start_server() {
    local cmd
    cmd="$(server_cmd "$1") ${3:-}"
    : > "$WORK/server.out"
    if [[ $2 == pinned ]]; then
        # shellcheck disable=SC2086 # cmd is a word list
        taskset -c 0 $cmd --addr 127.0.0.1:0 --threads 1 > "$WORK/server.out" 2> "$WORK/server.err" &
    else
        # shellcheck disable=SC2086
        $cmd --addr 127.0.0.1:0 > "$WORK/server.out" 2> "$WORK/server.err" &
    fi
    SPID=$!
    local i
    for i in $(seq 200); do
        SADDR=$(sed -n 's/^listening on //p' "$WORK/server.out" | head -1)
        [[ -n $SADDR ]] && return 0
        if ! kill -0 "$SPID" 2>/dev/null; then break; fi
        sleep 0.05
    done
    echo "run.sh: server $1 did not start:" >&2
    cat "$WORK/server.err" >&2
    return 1
}

stop_server() {
    kill -TERM "$SPID" 2>/dev/null || true
    local i
    for i in $(seq 100); do
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
}

# measure RESULTS NOTE_FN WORKLOADS_ARRAY SERVER_EXTRA LOADGEN_EXTRA SERVER...:
# every workload of the named array, each placement, REPS repetitions, the
# servers interleaved; SERVER_EXTRA is appended to every server's arguments
# and LOADGEN_EXTRA to the load generator's (the TLS files). One JSON line
# per measurement into RESULTS.
measure() {
    local results=$1 note_fn=$2
    local -n wls=$3
    local extra_s=$4 extra_lg=$5
    shift 5
    local w name mode conns size placements sargs placement rep s dur line lg
    for w in "${wls[@]}"; do
        IFS='|' read -r name mode conns size placements sargs <<< "$w"
        if (( conns > MAXCONN )); then
            $note_fn "skipped $name: open-files limit $HARD is too low"
            continue
        fi
        for placement in $placements; do
            if [[ $placement == pinned && $(nproc) -lt 2 ]]; then
                $note_fn "skipped pinned $name: needs 2 CPUs, nproc = $(nproc)"
                continue
            fi
            for rep in $(seq "$REPS"); do
                for s in "$@"; do
                    start_server "$s" "$placement" "$sargs $extra_s" || { FAILED=1; continue; }
                    if [[ $placement == pinned ]]; then
                        lg=(taskset -c 1 "$BIN/loadgen" --threads 1)
                    else
                        lg=("$BIN/loadgen")
                    fi
                    dur=$DURATION
                    [[ $mode == idle ]] && dur=$HOLD
                    printf '%-20s %-9s %-11s rep %s ... ' "$name" "$placement" "$s" "$rep" >&2
                    # shellcheck disable=SC2086 # extra_lg is a word list
                    if line=$("${lg[@]}" --addr "$SADDR" --server-pid "$SPID" --mode "$mode" \
                        --conns "$conns" --size "$size" --warmup "$WARMUP" --duration "$dur" \
                        --tag "server=$s" --tag "placement=$placement" --tag "workload=$name" \
                        --tag "rep=$rep" $extra_lg 2> "$WORK/loadgen.err"); then
                        echo "$line" >> "$results"
                        echo "$line" | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print(*(f"{k}={r[k]}" for k in ("rps","mb_s","conns_per_s","rss_per_conn_bytes","server_cpu_us_per_op","mb_per_server_cpu_s") if k in r))' >&2
                    else
                        echo "FAILED" >&2
                        cat "$WORK/loadgen.err" >&2
                        FAILED=1
                        printf '{"server":"%s","placement":"%s","workload":"%s","rep":"%s","error":true}\n' \
                            "$s" "$placement" "$name" "$rep" >> "$results"
                    fi
                    stop_server
                done
            done
        done
    done
}

mkdir -p "$(dirname "$OUT")"
FAILED=0
if [[ $RUN_PLAIN == 1 ]]; then
    note "16 writes: each server echoes every chunk with 16 write() calls of len/16 bytes (raw Tokio: 16 write_all into a tokio::io::BufWriter, then one flush)"
    note "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared)"
    T0=$(date +%s)
    measure "$RESULTS" note WORKLOADS "" "" "${ACTIVE[@]}"
    ELAPSED=$(( $(date +%s) - T0 ))
    note "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    python3 "$ROOT/bench/report.py" run --results "$RESULTS" --notes "$NOTES" --out "$OUT" \
        --command "$CMDLINE" --reps "$REPS" --warmup "$WARMUP" --duration "$DURATION" \
        --elapsed "$ELAPSED" --quick "$QUICK" --profile "$PROFILE"
    echo "==> wrote $OUT (measurements took ${ELAPSED}s)" >&2
fi

if [[ $RUN_TLS == 1 ]]; then
    TLS_ACTIVE=()
    for s in "${ACTIVE[@]}"; do
        case $s in asyncproto|raw_tokio) TLS_ACTIVE+=("$s") ;; esac
    done
    TLS_DIR=$WORK/tls
    TLS_ELAPSED=0
    if ! command -v openssl >/dev/null 2>&1; then
        tls_note "skipped the TLS section: openssl not found (it generates the throw-away certificates)"
    elif ! out=$(bash "$ROOT/bench/gen_tls_certs.sh" "$TLS_DIR" 2>&1); then
        tls_note "skipped the TLS section: generating the certificates with openssl failed: $(echo "$out" | tail -1)"
    elif (( ${#TLS_ACTIVE[@]} == 0 )); then
        tls_note "skipped the TLS section: neither asyncproto nor raw_tokio is in --servers"
    else
        tls_note "$(openssl version | cut -d' ' -f1-2): throw-away ECDSA P-256 CA and leaf (localhost, 127.0.0.1) in $TLS_DIR"
        tls_note "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared)"
        T0=$(date +%s)
        measure "$TLS_RESULTS" tls_note TLS_WORKLOADS \
            "--tls-cert $TLS_DIR/leaf.pem --tls-key $TLS_DIR/leaf.key" \
            "--tls-ca $TLS_DIR/ca.pem --tls-server-name localhost" "${TLS_ACTIVE[@]}"
        TLS_ELAPSED=$(( $(date +%s) - T0 ))
        tls_note "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
        params=$(python3 -c 'import json,sys
for l in open(sys.argv[1]):
    p = json.loads(l).get("tls_params")
    if p: print(p); break' "$TLS_RESULTS")
        [[ -n $params ]] && tls_note "negotiated: $params"
    fi
    python3 "$ROOT/bench/report.py" run --tls --results "$TLS_RESULTS" --notes "$TLS_NOTES" --out "$OUT" \
        --command "$CMDLINE" --reps "$REPS" --warmup "$WARMUP" --duration "$DURATION" \
        --elapsed "$TLS_ELAPSED" --quick "$QUICK" --profile "$PROFILE"
    echo "==> wrote the TLS section of $OUT (measurements took ${TLS_ELAPSED}s)" >&2
fi
if [[ $FAILED != 0 ]]; then
    echo "run.sh: FAILED: a server did not start or a load-generator run failed (see above)" >&2
    exit 1
fi
