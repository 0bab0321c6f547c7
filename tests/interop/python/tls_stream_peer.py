"""A stock-asyncio TLS client for `echo_server --tls-*`: sends SIZE
pseudo-random bytes in chunks while reading the echo; once every byte is
back, it closes (close_notify: TLS has no half-close) and waits for
connection_lost, which must come without an error: the server answered with
its own close_notify (asyncio reports a missing one as an error or a
shutdown timeout).

Usage: python3 tls_stream_peer.py --addr HOST:PORT --size N --ca PEM [--tls12]
(--tls12: offer TLS 1.2 only.)
Prints `ok N <sha256> <TLS version>` and exits 0 on success; exits 1
otherwise.
"""
import argparse
import asyncio
import hashlib
import random
import ssl
import sys


class Peer(asyncio.Protocol):
    def __init__(self, payload, done):
        self.payload = payload
        self.done = done
        self.received = hashlib.sha256()
        self.count = 0
        self.paused = False
        self.version = None

    def connection_made(self, transport):
        self.transport = transport
        self.version = transport.get_extra_info('ssl_object').version()
        self.offset = 0
        self.send_more()

    def send_more(self):
        chunk = 65536
        while self.offset < len(self.payload) and not self.paused:
            self.transport.write(self.payload[self.offset:self.offset + chunk])
            self.offset += chunk

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        self.send_more()

    def data_received(self, data):
        self.received.update(data)
        self.count += len(data)
        if self.count >= len(self.payload):
            self.transport.close()

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.done.set_result(exc)


if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--addr', required=True)
    p.add_argument('--size', type=int, required=True)
    p.add_argument('--ca', required=True)
    p.add_argument('--tls12', action='store_true')
    a = p.parse_args()
    host, port = a.addr.rsplit(':', 1)

    async def run():
        rnd = random.Random(7)
        payload = rnd.randbytes(a.size)
        context = ssl.create_default_context(cafile=a.ca)
        if a.tls12:
            context.maximum_version = ssl.TLSVersion.TLSv1_2
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        peer = Peer(payload, done)
        await loop.create_connection(
            lambda: peer, host.strip('[]'), int(port), ssl=context,
            server_hostname='localhost', ssl_shutdown_timeout=10)
        exc = await done
        want = hashlib.sha256(payload).hexdigest()
        got = peer.received.hexdigest()
        if exc is not None or peer.count != a.size or got != want:
            print('mismatch: exc={!r} count={} want={} got={}'.format(
                exc, peer.count, want, got), file=sys.stderr)
            return 1
        print('ok {} {} {}'.format(peer.count, got, peer.version), flush=True)
        return 0

    sys.exit(asyncio.run(run()))
