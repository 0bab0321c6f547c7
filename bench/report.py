#!/usr/bin/env python3
"""Turns the benchmark scripts' JSON lines into Markdown in docs/performance.md.

    report.py run --results R.jsonl --out FILE ...       (from bench/run.sh)
    report.py run --tls --results R.jsonl --out FILE ... (bench/run.sh's TLS part)
    report.py deterministic --results R.jsonl --out FILE (from bench/callgrind.sh)

Each writes its own section of FILE, between `<!-- BEGIN bench/X.sh -->` and
`<!-- END bench/X.sh -->` markers (the TLS part: `bench/run.sh TLS`), leaving the rest of the file (the
hand-written analysis) alone; the section is appended if the markers are
missing, and FILE is created if it does not exist.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys

SERVERS = ["asyncproto", "raw_tokio", "uvloop", "asyncio"]
BASE = "raw_tokio"

# (JSON key, column title, higher is better, format)
METRICS = {
    "rr": [
        ("rps", "req/s", True, "{:,.0f}"),
        ("server_cpu_us_per_op", "server CPU µs/req", False, "{:.2f}"),
        ("lat_p50_us", "p50 µs", False, "{:.1f}"),
        ("lat_p99_us", "p99 µs", False, "{:.1f}"),
        ("lat_p999_us", "p99.9 µs", False, "{:.1f}"),
    ],
    "stream": [
        ("mb_s", "MB/s echoed", True, "{:,.1f}"),
        ("mb_per_server_cpu_s", "MB per server CPU-s", True, "{:,.0f}"),
        ("server_cpu_util", "server cores busy", None, "{:.2f}"),
    ],
    "connect": [
        ("conns_per_s", "conns/s", True, "{:,.0f}"),
        ("server_cpu_us_per_op", "server CPU µs/conn", False, "{:.1f}"),
        ("lat_p99_us", "p99 µs", False, "{:.1f}"),
    ],
    "idle": [
        ("rss_per_conn_bytes", "server RSS bytes/conn", False, "{:,.0f}"),
    ],
}
# The figure each workload's headline ratio uses.
HEADLINE = {
    "rr": ["server_cpu_us_per_op", "rps", "lat_p99_us"],
    "stream": ["mb_per_server_cpu_s", "mb_s"],
    "connect": ["server_cpu_us_per_op", "conns_per_s"],
    "idle": ["rss_per_conn_bytes"],
}


def replace_section(path, name, body):
    begin = f"<!-- BEGIN {name} (generated; edits here are overwritten) -->"
    end = f"<!-- END {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}\n"
    text = ""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            text = f.read()
    i = text.find(f"<!-- BEGIN {name} (")
    j = text.find(end)
    if i >= 0 and j > i:
        text = text[:i] + block + text[j + len(end) :].lstrip("\n")
    else:
        if not text:
            text = "# Performance\n\n"
        text = text.rstrip("\n") + "\n\n" + block
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def machine():
    return f"`nproc` = {os.cpu_count()}, kernel `{platform.release()}` ({platform.machine()})"


def load(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def med_spread(vals):
    """Median and half the range relative to it (the ± shown)."""
    m = statistics.median(vals)
    if len(vals) < 2 or m == 0:
        return m, None
    return m, (max(vals) - min(vals)) / 2 / abs(m)


def fmt_cell(vals, fmt):
    if not vals:
        return "–"
    m, sp = med_spread(vals)
    s = fmt.format(m)
    if sp is not None:
        s += f" ±{sp * 100:.0f}%"
    return s


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}×"


def pair_cells(by, kind, scen, key, fmt):
    """asyncproto's and raw Tokio's figure for `key` and their ratio, as
    Markdown cells; None if neither server has it."""
    d = by.get((kind, scen), {})
    a, b = d.get("asyncproto", {}).get(key), d.get("raw_tokio", {}).get(key)
    if a is None and b is None:
        return None
    fa = fmt.format(a) if a is not None else "0"
    fb = fmt.format(b) if b is not None else "0"
    return f"{fa} | {fb} | {fmt_ratio(ratio(a or 0, b))}"


def tls_metrics():
    """METRICS and titles for the TLS section: a connect is a handshake."""
    m = {k: list(v) for k, v in METRICS.items()}
    m["connect"] = [
        ("conns_per_s", "handshakes/s", True, "{:,.0f}"),
        ("server_cpu_us_per_op", "server CPU µs/handshake", False, "{:.1f}"),
        ("lat_p99_us", "p99 µs", False, "{:.1f}"),
    ]
    m["idle"] = [("rss_per_conn_bytes", "server RSS bytes/TLS conn", False, "{:,.0f}")]
    return m


def cmd_run(args):
    tls = args.tls
    metrics_by_mode = tls_metrics() if tls else METRICS
    h = "#" if tls else ""  # the TLS section sits one level down, under "## TLS"
    base_label = "raw tokio-rustls" if tls else "raw Tokio"
    rows = load(args.results)
    notes = []
    if args.notes and os.path.exists(args.notes):
        with open(args.notes, encoding="utf-8") as f:
            notes = [l.rstrip() for l in f if l.strip()]
    # (placement, workload) -> server -> key -> [values]
    data = {}
    order = []
    errors = []
    for r in rows:
        key = (r["placement"], r["workload"])
        if key not in data:
            data[key] = {}
            order.append(key)
        if r.get("error"):
            errors.append(f"{r['server']} {r['placement']} {r['workload']} rep {r['rep']}")
            continue
        per = data[key].setdefault(r["server"], {"mode": r["mode"]})
        for k, v in r.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                per.setdefault(k, []).append(v)
    servers = [s for s in SERVERS if any(s in d for d in data.values())]

    out = []
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = "Quick run (smoke test; not a measurement)" if args.quick == "1" else "Results"
    if tls:
        title = "TLS: " + title[0].lower() + title[1:]
    out.append(f"{h}## {title}\n")
    out.append(f"- date: {today}")
    out.append(f"- command: `{args.command}`")
    out.append(f"- machine: {machine()}")
    if args.profile != "release":
        out.append(f"- **{args.profile} build**: figures are meaningless")
    if tls:
        out.append(
            "- servers: `echo_server --tls-cert … --tls-key …` (asyncproto) and `raw_tokio_echo --tls-cert … "
            "--tls-key …` (raw tokio-rustls: `TlsAcceptor`, then `read`/`write_all`+`flush` on the `TlsStream`), "
            "the same `rustls` server configuration (ring); load generator `--tls-ca` (certificate and name "
            "verified, no session resumption: every connect is a full handshake, then one echo and "
            "`close_notify` both ways)"
        )
    out.append(
        f"- {args.reps} repetition(s) of each measurement, servers interleaved; "
        f"warm-up {args.warmup} s, window {args.duration} s; a fresh server process each time; "
        f"measurements took {args.elapsed} s"
    )
    out.append(
        "- cells: median of the repetitions, ± half the range between them as a percentage of the median; "
        f"ratios are medians against the {base_label} server's median in the same run "
        "(for CPU/latency/RSS below 1 is better, for throughput above 1 is better)"
    )
    out.append(
        "- *pinned*: server `taskset -c 0 … --threads 1`, load generator `taskset -c 1 … --threads 1`; "
        "*unpinned*: server and load generator with default threads on all cores"
    )
    for n in notes:
        out.append(f"- note: {n}")
    for e in errors:
        out.append(f"- **FAILED**: {e}")
    out.append("")

    # Headline: ratios to raw Tokio, pinned then unpinned.
    for placement in ("pinned", "unpinned"):
        keys = [k for k in order if k[0] == placement]
        if not keys or BASE not in servers:
            continue
        others = [s for s in servers if s != BASE]
        out.append(f"{h}### Ratios against {base_label}, {placement}\n")
        head = "| workload | figure | " + " | ".join(others) + " |"
        out.append(head)
        out.append("|" + "---|" * (2 + len(others)))
        for key in keys:
            d = data[key]
            if BASE not in d:
                continue
            mode = d[BASE]["mode"]
            titles = {m[0]: m[1] for m in metrics_by_mode[mode]}
            for metric in HEADLINE[mode]:
                if metric not in d[BASE]:
                    continue
                base = statistics.median(d[BASE][metric])
                cells = []
                for s in others:
                    v = d.get(s, {}).get(metric)
                    cells.append(fmt_ratio(ratio(statistics.median(v), base) if v else None))
                out.append(f"| {key[1]} | {titles[metric]} | " + " | ".join(cells) + " |")
        out.append("")

    # Absolute figures, one table per workload kind and placement.
    for placement in ("pinned", "unpinned"):
        keys = [k for k in order if k[0] == placement]
        if not keys:
            continue
        out.append(f"{h}### Absolute figures, {placement}\n")
        for mode in ("rr", "stream", "connect", "idle"):
            mkeys = [k for k in keys if any(v.get("mode") == mode for v in data[k].values())]
            if not mkeys:
                continue
            metrics = metrics_by_mode[mode]
            head = "| workload | server | " + " | ".join(
                f"{m[1]} | ×raw" if m[2] is not None else m[1] for m in metrics
            ) + " |"
            ncols = 2 + sum(2 if m[2] is not None else 1 for m in metrics)
            out.append(head)
            out.append("|" + "---|" * ncols)
            for key in mkeys:
                d = data[key]
                for s in servers:
                    if s not in d:
                        continue
                    cells = []
                    for k, _, better, fmt in metrics:
                        vals = d[s].get(k, [])
                        cells.append(fmt_cell(vals, fmt))
                        if better is not None:
                            b = d.get(BASE, {}).get(k)
                            r = ratio(statistics.median(vals), statistics.median(b)) if vals and b else None
                            cells.append(fmt_ratio(r))
                    out.append(f"| {key[1]} | {s} | " + " | ".join(cells) + " |")
            out.append("")
    if not data:
        out.append("No measurements (see the notes).\n")
    replace_section(args.out, "bench/run.sh TLS" if tls else "bench/run.sh", "\n".join(out))


def cmd_deterministic(args):
    rows = load(args.results)
    by = {}
    for r in rows:
        by.setdefault((r["kind"], r.get("scenario", "")), {})[r["server"]] = r
    if args.tls:
        return deterministic_tls(args, by)
    out = []
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out.append("## Deterministic costs per message\n")
    out.append(f"- date: {today}")
    out.append(f"- command: `{args.command}`")
    out.append(f"- machine: {machine()}")
    out.append(
        f"- one connection, {args.size}-byte messages, request/response; callgrind and strace figures are "
        f"(count for {args.n2} messages − count for {args.n1}) / {args.n2 - args.n1}, "
        "so start-up, accept and shutdown cancel out; allocations are counted over "
        f"{args.n2 - args.n1} messages after a warm-up"
    )
    out.append(
        "- *idle*: the client pauses after each round trip (callgrind 1 ms, strace 300 µs, allocations 100 µs), "
        "so the server waits for every message — what a one-connection echo does at full speed; "
        "*b2b*: back to back, and the server, slowed down by the tool, finds the next message already "
        "waiting — what a busy server does; *idle16*: *idle*, but every server answers each message "
        "with 16 writes of 4 B (`--reply-writes 16`; raw Tokio: 16 `write_all` into a `BufWriter`, one flush)"
    )
    out.append("")
    out.append("| figure | scenario | asyncproto `echo_server --threads 1` | raw Tokio `--threads 1` | ratio |")
    out.append("|---|---|---|---|---|")

    def line(kind, key, title, fmt, scens=("idle", "b2b", "idle16")):
        for scen in scens:
            cells = pair_cells(by, kind, scen, key, fmt)
            if cells:
                out.append(f"| {title} | {scen} | {cells} |")

    line("callgrind", "instr_per_msg", "instructions per message (callgrind `Ir`, server process)", "{:,.0f}")
    line("strace", "syscalls_per_msg", "syscalls per message (`strace -c -f`, server process)", "{:.2f}")
    names = sorted({k[8:] for d in by.values() for r in d.values() for k in r if k.startswith("per_msg_")})
    for sc in names:
        line("strace", f"per_msg_{sc}", f"… `{sc}` per message", "{:.2f}")
    line("alloc", "allocs_per_msg", "heap allocations per message (counting allocator)", "{:.2f}")
    line("alloc", "alloc_bytes_per_msg", "heap bytes allocated per message", "{:,.0f}")
    line("alloc", "setup_allocs", "allocations to accept a connection and echo once", "{:,.0f}", ("idle",))
    line("alloc", "setup_alloc_bytes", "bytes allocated to accept a connection and echo once", "{:,.0f}", ("idle",))
    out.append("")
    tops = args.top or []
    for path in tops:
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read().rstrip()
        name = os.path.basename(path)[:-4].replace("top-", "callgrind_annotate, idle, ")
        out.append(f"<details><summary>{name} (top functions, {args.n2} messages)</summary>\n\n```text\n{text}\n```\n</details>\n")
    replace_section(args.out, "bench/callgrind.sh", "\n".join(out))


def deterministic_tls(args, by):
    """The TLS scenario of bench/callgrind.sh, in its own section."""
    scen = "tls1k"
    out = []
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out.append(f"### TLS: deterministic costs per {args.size}-byte echo\n")
    out.append(f"- date: {today}")
    out.append(f"- command: `{args.command}`")
    out.append(f"- machine: {machine()}")
    out.append(
        f"- one TLS connection (TLS 1.3, full handshake), {args.size}-byte messages, request/response, the client "
        "pausing after each round trip (callgrind 1 ms, strace 300 µs: the server waits for every message); "
        f"(count for {args.n2} messages − count for {args.n1}) / {args.n2 - args.n1}, so start-up and the "
        "handshake cancel out; servers `echo_server --tls-* --threads 1` and `raw_tokio_echo --tls-* "
        "--threads 1` (tokio-rustls)"
    )
    out.append("")
    out.append("| figure | asyncproto `echo_server --tls-*` | raw tokio-rustls | ratio |")
    out.append("|---|---|---|---|")

    def line(kind, key, title, fmt):
        cells = pair_cells(by, kind, scen, key, fmt)
        if cells:
            out.append(f"| {title} | {cells} |")

    line("callgrind", "instr_per_msg", "instructions per message (callgrind `Ir`, server process)", "{:,.0f}")
    line("strace", "syscalls_per_msg", "syscalls per message (`strace -c -f`, server process)", "{:.2f}")
    d = by.get(("strace", scen), {})
    names = sorted({k[8:] for r in d.values() for k in r if k.startswith("per_msg_")})
    for sc in names:
        line("strace", f"per_msg_{sc}", f"… `{sc}` per message", "{:.2f}")
    out.append("")
    for path in args.top or []:
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read().rstrip()
        name = os.path.basename(path)[:-4].replace("top-tls-", f"callgrind_annotate, {scen}, ")
        out.append(f"<details><summary>{name} (top functions, {args.n2} messages)</summary>\n\n```text\n{text}\n```\n</details>\n")
    replace_section(args.out, "bench/callgrind.sh TLS", "\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--results", required=True)
    r.add_argument("--notes")
    r.add_argument("--out", required=True)
    r.add_argument("--command", required=True)
    r.add_argument("--reps", required=True)
    r.add_argument("--warmup", required=True)
    r.add_argument("--duration", required=True)
    r.add_argument("--elapsed", required=True)
    r.add_argument("--quick", default="0")
    r.add_argument("--profile", default="release")
    r.add_argument("--tls", action="store_true", help="the TLS part: its own section, raw tokio-rustls as the base")
    d = sub.add_parser("deterministic")
    d.add_argument("--results", required=True)
    d.add_argument("--out", required=True)
    d.add_argument("--command", required=True)
    d.add_argument("--size", type=int, required=True)
    d.add_argument("--n1", type=int, required=True)
    d.add_argument("--n2", type=int, required=True)
    d.add_argument("--top", action="append")
    d.add_argument("--tls", action="store_true", help="the tls1k scenario: its own section")
    args = ap.parse_args()
    if args.cmd == "run":
        cmd_run(args)
    else:
        cmd_deterministic(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
