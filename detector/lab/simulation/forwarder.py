"""TCP forwarders that make the server see each simulated user's own client address.

libpq cannot choose its source address, so every simulated client address ``127.0.0.N``
gets a forwarder listening on ``127.0.0.N:port``; it connects on to the server from
``127.0.0.N`` (``bind`` before ``connect``), and the server logs ``host=127.0.0.N``.
Loopback only: all of 127.0.0.0/8 is local on Linux.

>>> import socket
>>> with socket.create_server(("127.0.0.1", 0)) as server:
...     with Forwarder("127.0.0.42", server.getsockname()) as fwd:
...         client = socket.create_connection(fwd.address)
...         peer, (peer_ip, _) = server.accept()
...         client.sendall(b"ping")
...         echoed = peer.recv(4)
...         client.close(); peer.close()
>>> peer_ip, echoed
('127.0.0.42', b'ping')
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable

BUFFER = 256 * 1024


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is this machine's loopback.

    Simulated clients connect from 127.0.0.N, which reaches only a loopback server.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("192.0.2.1")
    (True, True, False)
    """
    import ipaddress

    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy ``src`` to ``dst`` until EOF, then pass the EOF on."""
    try:
        while data := src.recv(BUFFER):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Both directions of one connection; closes both sockets when both have ended."""
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


class Forwarder:
    """Accepts on ``(source_ip, port)`` and relays each connection to ``target`` from ``source_ip``.

    ``port`` 0 picks a free one; :attr:`address` is where clients connect.
    """

    def __init__(self, source_ip: str, target: tuple[str, int], port: int = 0) -> None:
        self.source_ip = source_ip
        self.target = target
        self._listener = socket.create_server((source_ip, port))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._acceptor = threading.Thread(target=self._accept, name=f"fwd-{source_ip}", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                upstream.bind((self.source_ip, 0))
                upstream.connect(self.target)
            except OSError:
                client.close()
                upstream.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            t = threading.Thread(target=_relay, args=(client, upstream), daemon=True)
            t.start()
            # keep only live relays, so a long run does not pile up finished threads
            self._threads = [t for t in self._threads if t.is_alive()] + [t]

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join(timeout=5)
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> Forwarder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Forwarders:
    """One :class:`Forwarder` per client address, all relaying to the same server."""

    def __init__(self, target: tuple[str, int], source_ips: Iterable[str]) -> None:
        self.by_ip: dict[str, Forwarder] = {}
        try:
            for ip in source_ips:
                # the server listens on 127.0.0.1 only, so its port is free on other addresses
                try:
                    self.by_ip[ip] = Forwarder(ip, target, target[1])
                except OSError:
                    self.by_ip[ip] = Forwarder(ip, target)
        except BaseException:
            self.close()
            raise

    def address(self, ip: str) -> tuple[str, int]:
        return self.by_ip[ip].address

    def close(self) -> None:
        for f in self.by_ip.values():
            f.close()

    def __enter__(self) -> Forwarders:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
