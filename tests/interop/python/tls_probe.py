"""Blocking `ssl` probes of a TLS server (Python's ssl module on OpenSSL).

Usage: python3 tls_probe.py MODE --addr HOST:PORT --ca PEM

Modes:
  old-version  Offer only TLS 1.0 and 1.1. Prints `refused: <reason>` and
               exits 0 if the server refuses; exits 1 if the handshake
               succeeds; prints `skip: <reason>` and exits 3 if the local
               OpenSSL will not even send such a ClientHello.
  unwrap       Handshake, echo `ping`, then unwrap(): send close_notify and
               wait for the server's. Prints `ok <TLS version>` and exits 0
               if the server answers with close_notify and then closes TCP.
"""
import argparse
import socket
import ssl
import sys
import warnings


def old_version(host, port, ca):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        try:
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
            # Distributions' OpenSSL disables TLS < 1.2 at security level 2.
            context.set_ciphers('DEFAULT:@SECLEVEL=0')
        except (ValueError, ssl.SSLError) as e:
            print('skip: cannot configure TLS 1.0/1.1: {}'.format(e), flush=True)
            return 3
    with socket.create_connection((host, port), timeout=10) as sock:
        try:
            with context.wrap_socket(sock, server_hostname='localhost') as tls:
                print('accepted: {}'.format(tls.version()), flush=True)
                return 1
        except ssl.SSLError as e:
            if e.reason == 'NO_PROTOCOLS_AVAILABLE':
                print('skip: local OpenSSL refuses TLS 1.0/1.1: {}'.format(e), flush=True)
                return 3
            print('refused: {}'.format(e), flush=True)
            return 0
        except TimeoutError:
            print('no answer from the server in 10 s', file=sys.stderr)
            return 1
        except OSError as e:
            print('refused: {!r}'.format(e), flush=True)
            return 0


def unwrap(host, port, ca):
    context = ssl.create_default_context(cafile=ca)
    with socket.create_connection((host, port), timeout=10) as sock:
        tls = context.wrap_socket(sock, server_hostname='localhost')
        version = tls.version()
        tls.sendall(b'ping')
        got = b''
        while len(got) < 4:
            chunk = tls.recv(4 - len(got))
            if not chunk:
                break
            got += chunk
        if got != b'ping':
            print('bad echo {!r}'.format(got), file=sys.stderr)
            return 1
        # Sends our close_notify, then waits for the server's: an error (or
        # the 10 s timeout) if the server closes TCP without it.
        plain = tls.unwrap()
        rest = plain.recv(1)
        if rest != b'':
            print('bytes after close_notify: {!r}'.format(rest), file=sys.stderr)
            return 1
        print('ok {}'.format(version), flush=True)
        return 0


if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('mode', choices=['old-version', 'unwrap'])
    p.add_argument('--addr', required=True)
    p.add_argument('--ca', required=True)
    a = p.parse_args()
    host, port = a.addr.rsplit(':', 1)
    run = old_version if a.mode == 'old-version' else unwrap
    sys.exit(run(host.strip('[]'), int(port), a.ca))
