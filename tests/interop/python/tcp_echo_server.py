"""The asyncio documentation's TCP Echo Server, with the examples' CLI contract.

Usage: python3 tcp_echo_server.py --addr HOST:PORT
Prints `listening on HOST:PORT` (the real bound address) as its first stdout
line; the page's prints go to stderr.
"""
import argparse
import asyncio
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


async def main(host, port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoServerProtocol, host, port)
    sockname = server.sockets[0].getsockname()
    print('listening on {}:{}'.format(sockname[0], sockname[1]), flush=True)
    async with server:
        await server.serve_forever()


if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--addr', default='127.0.0.1:8888')
    a = p.parse_args()
    host, port = a.addr.rsplit(':', 1)
    try:
        asyncio.run(main(host.strip('[]'), int(port)))
    except KeyboardInterrupt:
        pass
