"""uvicorn's WebSocket protocol with two changes for clients that do not read what they are sent.

- Backpressure both ways: while the client is not taking what the server writes (the transport's
  write buffer is over its high-water mark), the server stops reading from it. uvicorn answers
  every ping with a pong whatever the state of the buffer, so a client that sent pings and read
  nothing grew the server's memory by about 24 MB a second; now TCP makes it wait instead.
- A socket the app is done with is cut (TCP reset) ``linger_s`` after, if its client still has
  not taken what is buffered: asyncio's close waits for that, forever for a client that never
  reads again, and uvicorn's shutdown waited for it too."""
from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class BoundedWebSocketProtocol(WebSocketsSansIOProtocol):
    linger_s = 10.0

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
