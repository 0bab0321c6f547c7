"""The asyncio documentation's TCP Echo Server over TLS (stock asyncio with a
server `ssl.SSLContext`), with the examples' CLI contract.

Usage: python3 tls_echo_server.py --addr HOST:PORT --cert PEM --key PEM
Prints `listening on HOST:PORT` (the real bound address) as its first stdout
line; the page's prints go to stderr. Each connection gets back the bytes of
its first data_received, then close(): close_notify, then FIN.
"""
import argparse
import asyncio
import ssl
import sys


class EchoServerProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        peername = transport.get_extra_info('peername')
        print('Connection from {}'.format(peername), file=sys.stderr)
        self.transport = transport

    def data_received(self, data):
        message = data.decode()
        print('Data received: {!r}'.format(message), file=sys.stderr)

        print('Send: {!r}'.format(message), file=sys.stderr)
        self.transport.write(data)

        print('Close the client socket', file=sys.stderr)
        self.transport.close()


async def main(host, port, context):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoServerProtocol, host, port, ssl=context)
    sockname = server.sockets[0].getsockname()
    print('listening on {}:{}'.format(sockname[0], sockname[1]), flush=True)
    async with server:
        await server.serve_forever()


if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--addr', default='127.0.0.1:8888')
    p.add_argument('--cert', required=True)
    p.add_argument('--key', required=True)
    a = p.parse_args()
    host, port = a.addr.rsplit(':', 1)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(a.cert, a.key)
    try:
        asyncio.run(main(host.strip('[]'), int(port), context))
    except KeyboardInterrupt:
        pass
