#!/usr/bin/env python3
"""Stock asyncio (or uvloop) echo server for asyncproto's benchmarks (issue #4).

    asyncio_echo.py --addr 127.0.0.1:8888 [--threads N] [--uvloop]

The same protocol as examples/echo_server.rs: write back everything received;
when the write buffer goes over the high-water mark, pause reading until it
drains (pause_writing -> pause_reading, resume_writing -> resume_reading).
The default eof_received() closes after the buffer is flushed.

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

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)

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
    args = ap.parse_args()
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
