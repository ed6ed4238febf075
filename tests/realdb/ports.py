"""Ports for the servers and processes the tests start.

A port bound to 0 and released (the usual trick) is a port in the kernel's ephemeral range
(32768-60999 on Linux), which the kernel goes on handing out to client sockets: on a busy
machine a Kafka client's next connection could take it before the process the test starts
binds it, and that process exits "address already in use". Ports below the range are never
handed out by the kernel, only taken by an explicit bind.

>>> LOW <= free_port() < HIGH
True
"""

from __future__ import annotations

import random
import socket
from typing import Final

#: The range ports are chosen from: below Linux's default ephemeral range.
LOW: Final = 20000
HIGH: Final = 32768


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, chosen at random below the ephemeral range."""
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randrange(LOW, HIGH)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port between {LOW} and {HIGH}")
