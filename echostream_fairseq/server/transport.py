"""uvicorn's WebSocket protocol with one change: the socket of a client that has stopped reading
is cut (TCP reset) instead of being held open forever.

When the app is done with a connection, uvicorn closes its transport, and asyncio's close first
waits for the client to take what is still buffered. A client that never reads again never does:
its socket, its buffers and uvicorn's record of it stayed, and uvicorn's shutdown waited for
them. Here whatever is still unsent ``linger_s`` after the app returned is dropped."""
from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class CuttingWebSocketProtocol(WebSocketsSansIOProtocol):
    linger_s = 10.0

    async def run_asgi(self) -> None:
        await super().run_asgi()
        if not self.disconnected:
            self.loop.call_later(self.linger_s, self._cut)

    def _cut(self) -> None:
        if not self.disconnected:
            self.transport.abort()


def cutting_protocol(linger_s: float) -> type:
    """The protocol class for ``uvicorn.Config(ws=...)``, cutting after ``linger_s``."""
    return type("CuttingWebSocketProtocol", (CuttingWebSocketProtocol,), {"linger_s": float(linger_s)})
