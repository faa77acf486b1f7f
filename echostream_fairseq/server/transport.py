"""uvicorn's HTTP and WebSocket protocols, changed against clients that misbehave below the app.

HTTP (before a request reaches the app, where no limit of the app can see it):

- A connection must finish its request head within ``head_timeout_s`` of connecting (and of its
  last response, when kept alive), or it is cut. uvicorn waited forever for a head sent a byte
  at a time, or never: one client holding a few hundred such sockets used up the server's file
  descriptors, and nobody else could connect (and the log grew by thousands of lines a second).
- A client address holds at most ``SocketBudget.per_client`` TCP connections, whatever they carry
  (a request head still coming, HTTP, a WebSocket); more are cut as they are accepted. Addresses
  of trusted proxies (``--forwarded-allow-ips``) are not counted: the clients behind them are, by
  the app, from their X-Forwarded-For.

WebSocket:

- Backpressure both ways: while the client is not taking what the server writes (the transport's
  write buffer is over its high-water mark), the server stops reading from it. uvicorn answers
  every ping with a pong whatever the state of the buffer, so a client that sent pings and read
  nothing grew the server's memory by about 24 MB a second; now TCP makes it wait instead.
- A socket the app is done with is cut (TCP reset) ``linger_s`` after, if its client still has
  not taken what is buffered: asyncio's close waits for that, forever for a client that never
  reads again, and uvicorn's shutdown waited for it too.
- Pings are answered up to ``max_pings_per_second`` (bursts of as many); a connection that sends
  more is closed (1008). uvicorn answered every ping at once inside its read loop: a client
  sending ~100,000 pings a second (and reading the pongs) made another client's session 6x
  slower. Clients ping every few seconds at most; browsers do not ping at all."""
from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Iterable, Optional, Tuple

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from .app import FrameRate


logger = logging.getLogger(__name__)


class SocketBudget:
    """Open TCP connections per client address, counted from accept to close (one per server)."""

    def __init__(self, per_client: int, exempt: Iterable[str] = ()):
        self.per_client = per_client
        self.exempt = {a.strip() for a in exempt if a.strip()}
        self.count: Counter = Counter()
        self._host = {}  # transport -> the address it is counted under
        self.refused = 0
        self._warned = 0.0

    def open(self, transport, host: Optional[str]) -> bool:
        """Count a new connection; False (nothing counted) when its address holds its budget."""
        if host is None or host in self.exempt or "*" in self.exempt:
            return True
        if self.count[host] >= self.per_client:
            self.refused += 1
            if time.monotonic() - self._warned >= 1.0:  # a flood logs once a second, not per socket
                self._warned = time.monotonic()
                logger.warning("%s holds %d connections, the most one client address may: cut new ones "
                               "(%d cut so far)", host, self.per_client, self.refused)
            return False
        self.count[host] += 1
        self._host[transport] = host
        return True

    def close(self, transport) -> None:
        host = self._host.pop(transport, None)
        if host is not None:
            self.count[host] -= 1
            if not self.count[host]:
                del self.count[host]


class BoundedH11Protocol(H11Protocol):
    budget: SocketBudget = SocketBudget(1 << 30)
    head_timeout_s = 10.0
    _head_timer = None
    _head_scope = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if not self.budget.open(transport, self.client[0] if self.client else None):
            transport.abort()
            return
        self._await_head()

    def _await_head(self) -> None:
        """The next request head must be in within head_timeout_s (a new one sets a new scope)."""
        self._stop_head_timer()
        self._head_scope = self.scope
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_late)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.scope is self._head_scope and not self.transport.is_closing():
            logger.info("%s sent no complete request within %g s: connection cut", self.client, self.head_timeout_s)
            self.transport.abort()

    def handle_events(self) -> None:
        super().handle_events()
        if self._head_timer is not None and self.scope is not self._head_scope:  # a request (or upgrade) came
            self._stop_head_timer()

    def on_response_complete(self) -> None:
        self._await_head()  # before uvicorn goes on to a pipelined request, which stops the timer again
        super().on_response_complete()

    def connection_lost(self, exc) -> None:
        self._stop_head_timer()
        self.budget.close(self.transport)
        super().connection_lost(exc)


class BoundedWebSocketProtocol(WebSocketsSansIOProtocol):
    budget: SocketBudget = SocketBudget(1 << 30)  # the HTTP protocol's, which counted this socket
    linger_s = 10.0
    max_pings_per_second = 10.0
    _pings: Optional[FrameRate] = None

    def handle_ping(self) -> None:
        if self._pings is None:
            self._pings = FrameRate(self.max_pings_per_second)
        if self.close_sent:
            return
        if self._pings.wait() > 0:
            self.logger.warning("%s: more than %g pings a second: connection closed", self.client, self.max_pings_per_second)
            self.conn.fail(1008, "too many pings")
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.transport.close()
            return
        super().handle_ping()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self.writable.is_set() and not self.transport.is_closing():
            self.transport.pause_reading()  # the client is not reading: neither does the server

    def resume_writing(self) -> None:
        super().resume_writing()
        if not self.read_paused and not self.transport.is_closing():  # (uvicorn's own pause: its queue is full)
            self.transport.resume_reading()

    async def run_asgi(self) -> None:
        await super().run_asgi()
        if not self.disconnected:
            self.loop.call_later(self.linger_s, self._cut)

    def _cut(self) -> None:
        if not self.disconnected:
            self.transport.abort()

    def connection_lost(self, exc) -> None:
        self.budget.close(self.transport)
        super().connection_lost(exc)


def bounded_protocols(head_timeout_s: float, sockets_per_client: int, trusted: Iterable[str],
                      linger_s: float) -> Tuple[type, type]:
    """The protocol classes for ``uvicorn.Config(http=..., ws=...)`` of one server, sharing one
    :class:`SocketBudget`."""
    budget = SocketBudget(sockets_per_client, trusted)
    http = type("BoundedH11Protocol", (BoundedH11Protocol,), {"budget": budget, "head_timeout_s": float(head_timeout_s)})
    ws = type("BoundedWebSocketProtocol", (BoundedWebSocketProtocol,), {"budget": budget, "linger_s": float(linger_s)})
    return http, ws
