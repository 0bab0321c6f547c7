#!/usr/bin/env bash
# Deterministic cost per echoed message (issue #4): asyncproto's echo_server
# against the raw Tokio echo server, each with --threads 1.
#
#   bench/callgrind.sh [--n1 2000] [--n2 22000] [--size 64] [--out FILE]
#                      [--only plain|tls] [--tls-size 1024]
#
# 1. callgrind: the server runs under `valgrind --tool=callgrind` while the
#    load generator (native) echoes a fixed number of messages on one
#    connection (`loadgen --mode rr --count N`); done for N1 and N2 messages,
#    instructions per message = (Ir(N2) - Ir(N1)) / (N2 - N1), so start-up,
#    accept and shutdown cancel out.
# 2. strace: the same two runs under `strace -c -f`: syscalls per message
#    (and per syscall name), the same difference.
# 3. alloc_count: heap allocations per message in steady state, both servers
#    in one process under one counting allocator.
#
# Two scenarios each: "idle" — the client pauses after every round trip
# (`--think-us`), so the server has gone idle and waits for each message, as
# a one-connection echo does at full speed without a tool slowing the server
# down; and "b2b" — back to back, where the server, slowed down by the tool,
# finds the next message already waiting (as a busy server does). A third,
# "idle16", is "idle" with every server answering each message with 16 small
# writes (`--reply-writes 16`; raw Tokio: 16 `write_all` into a `BufWriter`
# and one flush), for callgrind and strace.
#
# TLS ("tls1k", skipped with the reason if `openssl` cannot make the
# throw-away certificates): "idle" with --tls-size-byte messages (1 KiB)
# over TLS, `echo_server --tls-*` against `raw_tokio_echo --tls-*` (raw
# tokio-rustls), callgrind and strace, the handshake cancelling out like the
# start-up; written between the `bench/callgrind.sh TLS` markers. `--only
# tls` runs only that, `--only plain` everything else.
#
# Writes a section of docs/performance.md (between the bench/callgrind.sh
# markers) and keeps the raw outputs (callgrind.out files, annotations,
# strace summaries) in target/bench/callgrind/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CMDLINE="bench/callgrind.sh${*:+ $*}"
N1=2000
N2=22000
SIZE=64
TLS_SIZE=1024
ONLY=""
OUT=$ROOT/docs/performance.md
while [[ $# -gt 0 ]]; do
    case "$1" in
        --n1) N1=$2; shift ;;
        --n2) N2=$2; shift ;;
        --size) SIZE=$2; shift ;;
        --tls-size) TLS_SIZE=$2; shift ;;
        --only)
            case $2 in plain|tls) ONLY=$2 ;; *) echo "callgrind.sh: --only plain|tls" >&2; exit 2 ;; esac
            shift ;;
        --out) OUT=$2; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "callgrind.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if (( N2 <= N1 )); then
    echo "callgrind.sh: --n2 must be larger than --n1" >&2
    exit 2
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target/bench}"
BIN="$CARGO_TARGET_DIR/release"
WORK="$CARGO_TARGET_DIR/callgrind"
mkdir -p "$WORK"
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
RUN_PLAIN=1
RUN_TLS=1
[[ $ONLY == tls ]] && RUN_PLAIN=0
[[ $ONLY == plain ]] && RUN_TLS=0
TLS_DIR=$WORK/tls

for tool in valgrind callgrind_annotate strace python3; do
    command -v "$tool" >/dev/null || { echo "callgrind.sh: $tool not found" >&2; exit 1; }
done

echo "==> release build (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)" >&2
cargo build --release -q -p asyncproto-loadgen -p asyncproto-examples \
    --bin loadgen --bin raw_tokio_echo --bin alloc_count --bin echo_server >&2

server_bin() {
    case $1 in
        asyncproto) echo "$BIN/echo_server" ;;
        raw_tokio) echo "$BIN/raw_tokio_echo" ;;
    esac
}

# run_one TOOL SERVER N SCENARIO THINK_US [SERVER_ARGS]: runs the server
# under the tool, echoes N messages through it, stops it (SIGTERM: both
# servers exit cleanly, so the tools write their output).
run_one() {
    local tool=$1 server=$2 n=$3 scen=$4 think=$5 sargs=${6:-} bin pid addr i
    local size=$SIZE lgargs=""
    if [[ $scen == tls* ]]; then
        size=$TLS_SIZE
        sargs="$sargs --tls-cert $TLS_DIR/leaf.pem --tls-key $TLS_DIR/leaf.key"
        lgargs="--tls-ca $TLS_DIR/ca.pem"
    fi
    bin=$(server_bin "$server")
    : > "$WORK/server.out"
    case $tool in
        callgrind)
            # shellcheck disable=SC2086 # sargs is a word list
            valgrind --tool=callgrind --callgrind-out-file="$WORK/callgrind.$scen.$server.$n.out" \
                "$bin" --addr 127.0.0.1:0 --threads 1 $sargs > "$WORK/server.out" 2> "$WORK/server.err" &
            ;;
        strace)
            # shellcheck disable=SC2086
            strace -c -f -o "$WORK/strace.$scen.$server.$n.txt" \
                "$bin" --addr 127.0.0.1:0 --threads 1 $sargs > "$WORK/server.out" 2> "$WORK/server.err" &
            ;;
    esac
    pid=$!
    addr=""
    for i in $(seq 1200); do
        addr=$(sed -n 's/^listening on //p' "$WORK/server.out" | head -1)
        [[ -n $addr ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    if [[ -z $addr ]]; then
        echo "callgrind.sh: $server under $tool did not start" >&2
        cat "$WORK/server.err" >&2
        exit 1
    fi
    # shellcheck disable=SC2086 # lgargs is a word list
    "$BIN/loadgen" --addr "$addr" --mode rr --conns 1 --size "$size" --count "$n" --threads 1 \
        --think-us "$think" $lgargs > "$WORK/loadgen.$tool.$scen.$server.$n.json"
    # valgrind runs the program in its own process; strace runs it as its
    # child, which is the one to signal.
    if [[ $tool == strace ]]; then
        # shellcheck disable=SC2046 # one pid
        kill -TERM $(cat "/proc/$pid/task/$pid/children") || true
    else
        kill -TERM "$pid"
    fi
    wait "$pid" || true
}

ir_total() {
    # The "totals:" (or "summary:") line of a callgrind output file.
    sed -n 's/^\(totals\|summary\): *\([0-9]*\).*/\2/p' "$1" | head -1
}

# scenario:think_us[:server arguments]
scen_args() {
    local rest=${1#*:}
    [[ $rest == *:* ]] && echo "${rest#*:}"
    return 0
}

CG_SCENS=()
ST_SCENS=()
if [[ $RUN_PLAIN == 1 ]]; then
    CG_SCENS+=("idle:1000" "b2b:0" "idle16:1000:--reply-writes 16")
    ST_SCENS+=("idle:300" "b2b:0" "idle16:300:--reply-writes 16")
fi
TLS_OK=0
if [[ $RUN_TLS == 1 ]]; then
    if out=$(bash "$ROOT/bench/gen_tls_certs.sh" "$TLS_DIR" 2>&1); then
        TLS_OK=1
        CG_SCENS+=("tls1k:1000")
        ST_SCENS+=("tls1k:300")
    else
        echo "callgrind.sh: skipped the TLS scenario: cannot make the certificates: $(echo "$out" | tail -1)" >&2
    fi
fi

for sc in "${CG_SCENS[@]}"; do
    scen=${sc%%:*}
    think=${sc#*:}
    think=${think%%:*}
    sargs=$(scen_args "$sc")
    for server in asyncproto raw_tokio; do
        for n in "$N1" "$N2"; do
            echo "==> callgrind ($scen): $server, $n messages" >&2
            run_one callgrind "$server" "$n" "$scen" "$think" "$sargs"
        done
        a=$(ir_total "$WORK/callgrind.$scen.$server.$N1.out")
        b=$(ir_total "$WORK/callgrind.$scen.$server.$N2.out")
        echo "{\"kind\":\"callgrind\",\"scenario\":\"$scen\",\"server\":\"$server\",\"ir_n1\":$a,\"ir_n2\":$b,\"instr_per_msg\":$(( (b - a) / (N2 - N1) ))}" >> "$RESULTS"
        for k in self inclusive; do
            inc=no
            [[ $k == inclusive ]] && inc=yes
            callgrind_annotate --auto=no --inclusive=$inc "$WORK/callgrind.$scen.$server.$N2.out" 2>/dev/null \
                | sed -e "s#$ROOT/##g" -e 's#/root/[^ ]*/registry/src/[^/]*/##g' \
                    -e 's#/rustc/[0-9a-f]*/library/#rust:#g' -e 's#\./[a-z]*/\./[a-z]*/#glibc:#g' \
                    -e 's#\./[a-z]*/\.\./sysdeps/[^ ]*/\([^/ ]*:\)#glibc:\1#g' -e 's# \[/[^]]*\]$##' \
                > "$WORK/annotate.$scen.$server.$k.txt" || true
        done
    done
done

strace_row() {
    python3 - "$@" <<'PY'
import json, sys
def calls(path):
    out = {}
    for line in open(path):
        f = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(f) >= 5 and f[0][0].isdigit() and f[3].isdigit():
            out[f[-1]] = int(f[3])
    return out
p1, p2, server, n1, n2, scen = sys.argv[1:7]
a, b = calls(p1), calls(p2)
n = int(n2) - int(n1)
row = {"kind": "strace", "scenario": scen, "server": server}
row["syscalls_per_msg"] = (b.get("total", 0) - a.get("total", 0)) / n
for k in sorted(set(a) | set(b)):
    if k != "total":
        d = (b.get(k, 0) - a.get(k, 0)) / n
        if abs(d) >= 0.005:
            row["per_msg_" + k] = d
print(json.dumps(row))
PY
}

for sc in "${ST_SCENS[@]}"; do
    scen=${sc%%:*}
    think=${sc#*:}
    think=${think%%:*}
    sargs=$(scen_args "$sc")
    for server in asyncproto raw_tokio; do
        for n in "$N1" "$N2"; do
            echo "==> strace ($scen): $server, $n messages" >&2
            run_one strace "$server" "$n" "$scen" "$think" "$sargs"
        done
        strace_row "$WORK/strace.$scen.$server.$N1.txt" "$WORK/strace.$scen.$server.$N2.txt" \
            "$server" "$N1" "$N2" "$scen" >> "$RESULTS"
    done
done

if [[ $RUN_PLAIN == 1 ]]; then
    echo "==> alloc_count" >&2
    for sc in "idle:100" "b2b:0"; do
        "$BIN/alloc_count" --count $((N2 - N1)) --size "$SIZE" --think-us "${sc#*:}" \
            | python3 -c 'import json, sys
for l in sys.stdin:
    r = json.loads(l); r["kind"] = "alloc"; r["scenario"] = sys.argv[1]; print(json.dumps(r))' \
            "${sc%%:*}" >> "$RESULTS"
    done

    # The top of each annotation (idle scenario), for the doc.
    for server in asyncproto raw_tokio; do
        for k in self inclusive; do
            awk '/^-+$/{d++} d>=4' "$WORK/annotate.idle.$server.$k.txt" | grep -v '^-*$' | head -32 \
                > "$WORK/top-$k-$server.txt" || true
        done
    done

    python3 "$ROOT/bench/report.py" deterministic --results "$RESULTS" --out "$OUT" --command "$CMDLINE" \
        --size "$SIZE" --n1 "$N1" --n2 "$N2" \
        --top "$WORK/top-self-asyncproto.txt" --top "$WORK/top-inclusive-asyncproto.txt" \
        --top "$WORK/top-self-raw_tokio.txt" --top "$WORK/top-inclusive-raw_tokio.txt"
fi

if [[ $TLS_OK == 1 ]]; then
    for server in asyncproto raw_tokio; do
        awk '/^-+$/{d++} d>=4' "$WORK/annotate.tls1k.$server.self.txt" | grep -v '^-*$' | head -32 \
            > "$WORK/top-tls-self-$server.txt" || true
    done
    python3 "$ROOT/bench/report.py" deterministic --tls --results "$RESULTS" --out "$OUT" \
        --command "$CMDLINE" --size "$TLS_SIZE" --n1 "$N1" --n2 "$N2" \
        --top "$WORK/top-tls-self-asyncproto.txt" --top "$WORK/top-tls-self-raw_tokio.txt"
fi
cat "$RESULTS" >&2
echo "==> wrote $OUT" >&2
