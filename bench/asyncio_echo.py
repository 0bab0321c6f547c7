#!/usr/bin/env python3
"""Stock asyncio (or uvloop) echo server for asyncproto's benchmarks (issue #4).

    asyncio_echo.py --addr 127.0.0.1:8888 [--threads N] [--uvloop] [--reply-writes N]

The same protocol as examples/echo_server.rs: write back everything received;
when the write buffer goes over the high-water mark, pause reading until it
drains (pause_writing -> pause_reading, resume_writing -> resume_reading).
The default eof_received() closes after the buffer is flushed. With
``--reply-writes N`` each chunk is echoed with N ``transport.write()`` calls
of about len/N bytes each, as ``echo_server --reply-writes N``.

Same command-line contract as echo_server: the first stdout line is
``listening on HOST:PORT``; SIGINT or SIGTERM stops it (exit 0). ``--threads``
is accepted and ignored (an asyncio loop is one thread).
"""

import argparse
import asyncio
import signal
import sys


class Echo(asyncio.Protocol):
    """Echo protocol with asyncio's flow control wired to reading."""

    reply_writes = 1

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        n = self.reply_writes
        if n <= 1:
            self.transport.write(data)
            return
        view, size = memoryview(data), len(data)
        for i in range(n):
            self.transport.write(view[i * size // n : (i + 1) * size // n])

    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()


async def serve(host, port):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    server = await loop.create_server(Echo, host, port)
    addr = server.sockets[0].getsockname()
    print(f"listening on {addr[0]}:{addr[1]}", flush=True)
    await stop
    server.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", default="127.0.0.1:8888")
    ap.add_argument("--threads", type=int, default=None, help="ignored")
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop")
    ap.add_argument("--reply-writes", type=int, default=1, help="write() calls per echoed chunk")
    args = ap.parse_args()
    Echo.reply_writes = max(1, args.reply_writes)
    host, _, port = args.addr.rpartition(":")
    coro = serve(host.strip("[]"), int(port))
    if args.uvloop:
        import uvloop

        if hasattr(uvloop, "run"):
            uvloop.run(coro)
        else:
            uvloop.install()
            asyncio.run(coro)
    else:
        asyncio.run(coro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
