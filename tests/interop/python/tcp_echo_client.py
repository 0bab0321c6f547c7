"""The asyncio documentation's TCP Echo Client, with the examples' CLI contract.

Usage: python3 tcp_echo_client.py --addr HOST:PORT --message M
"""
import argparse
import asyncio


class EchoClientProtocol(asyncio.Protocol):
    def __init__(self, message, on_con_lost):
        self.message = message
        self.on_con_lost = on_con_lost

    def connection_made(self, transport):
        transport.write(self.message.encode())
        print('Data sent: {!r}'.format(self.message), flush=True)

    def data_received(self, data):
        print('Data received: {!r}'.format(data.decode()), flush=True)

    def connection_lost(self, exc):
        print('The server closed the connection', flush=True)
        self.on_con_lost.set_result(True)


async def main(host, port, message):
    loop = asyncio.get_running_loop()
    on_con_lost = loop.create_future()
    transport, protocol = await loop.create_connection(
        lambda: EchoClientProtocol(message, on_con_lost), host, port)
    try:
        await on_con_lost
    finally:
        transport.close()


if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--addr', default='127.0.0.1:8888')
    p.add_argument('--message', default='Hello World!')
    a = p.parse_args()
    host, port = a.addr.rsplit(':', 1)
    asyncio.run(main(host.strip('[]'), int(port), a.message))
