"""uvicorn's WebSocket protocol with three changes against clients that misbehave below the app.

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

from typing import Optional

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from .app import FrameRate


class BoundedWebSocketProtocol(WebSocketsSansIOProtocol):
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


def bounded_protocol(linger_s: float) -> type:
    """The protocol class for ``uvicorn.Config(ws=...)``, cutting after ``linger_s``."""
    return type("BoundedWebSocketProtocol", (BoundedWebSocketProtocol,), {"linger_s": float(linger_s)})
