"""A stock-asyncio peer for echo_server: sends SIZE pseudo-random bytes in
chunks while reading the echo, half-closes, and checks that exactly the same
bytes came back (SHA-256) before the server closed.

Usage: python3 stream_peer.py --addr HOST:PORT --size N
Prints `ok N <sha256>` and exits 0 on success; exits 1 otherwise.
"""
import argparse
import asyncio
import hashlib
import random
import sys


class Peer(asyncio.Protocol):
    def __init__(self, payload, done):
        self.payload = payload
        self.done = done
        self.received = hashlib.sha256()
        self.count = 0
        self.paused = False

    def connection_made(self, transport):
        self.transport = transport
        self.offset = 0
        self.send_more()

    def send_more(self):
        chunk = 65536
        while self.offset < len(self.payload) and not self.paused:
            self.transport.write(self.payload[self.offset:self.offset + chunk])
            self.offset += chunk
        if self.offset >= len(self.payload) and not self.paused:
            self.transport.write_eof()

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        if self.offset < len(self.payload):
            self.send_more()

    def data_received(self, data):
        self.received.update(data)
        self.count += len(data)

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.done.set_result(exc)


if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--addr', required=True)
    p.add_argument('--size', type=int, required=True)
    a = p.parse_args()
    host, port = a.addr.rsplit(':', 1)

    async def run():
        rnd = random.Random(7)
        payload = rnd.randbytes(a.size)
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        peer = Peer(payload, done)
        await loop.create_connection(lambda: peer, host.strip('[]'), int(port))
        exc = await done
        want = hashlib.sha256(payload).hexdigest()
        got = peer.received.hexdigest()
        if exc is not None or peer.count != a.size or got != want:
            print('mismatch: exc={!r} count={} want={} got={}'.format(exc, peer.count, want, got), file=sys.stderr)
            return 1
        print('ok {} {}'.format(peer.count, got), flush=True)
        return 0

    sys.exit(asyncio.run(run()))
