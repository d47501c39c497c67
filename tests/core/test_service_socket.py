"""TCP_NODELAY on the service's connections, on the kind of listening socket uvicorn binds
itself for ``--workers N`` (``socket.socket(AF_INET)``, ``proto`` 0), where asyncio does not
set it: without it, answers waited for the client's delayed ACK (p50 52 ms, 2 workers at
0.30x one worker's requests/s)."""

from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from core.inference.service_socket import NoDelayHttpToolsProtocol


async def _app(scope, receive, send):
    pass


def nodelay_of_accepted_connection(protocol_class) -> int:
    """Accept one loopback connection with ``protocol_class`` on a proto-0 listening socket
    (as uvicorn's multi-worker mode binds it); the accepted socket's TCP_NODELAY."""
    config = uvicorn.Config(app=_app, http=protocol_class, log_level="warning")
    config.load()
    state = ServerState()
    got = {}

    async def main():
        listener = socket.socket(socket.AF_INET)        # proto 0, as uvicorn binds it
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert listener.proto == 0
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: protocol_class(config=config, server_state=state, app_state={}),
            sock=listener)
        _, writer = await asyncio.open_connection(*listener.getsockname())
        for _ in range(100):
            if state.connections:
                break
            await asyncio.sleep(0.01)
        (conn,) = state.connections
        sock = conn.transport.get_extra_info("socket")
        got["nodelay"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        writer.close()
        server.close()

    # a loop of its own thread: the browser tests leave one running in the main thread
    runner = threading.Thread(target=lambda: asyncio.run(main()))
    runner.start()
    runner.join(30)
    return got["nodelay"]


def test_connections_get_tcp_nodelay_on_a_proto_0_listening_socket():
    assert nodelay_of_accepted_connection(HttpToolsProtocol) == 0     # the defect, as it was
    assert nodelay_of_accepted_connection(NoDelayHttpToolsProtocol) != 0
