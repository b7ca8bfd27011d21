"""vae_lesson_jupyter: the server extension that switches Nagle's algorithm off on kernel websockets.

Checked on a real tornado websocket (the socket option is read back from the server's socket), on a stand-in for
the Jupyter server, and in this environment's Jupyter config (requirements.txt installs and enables it). The effect
on the explorers (a round trip of about 20 ms instead of 50) is measured by tests/test_browser.py.
"""

import asyncio
import logging
import pathlib
import shutil
import socket
import subprocess
import sys
import types

import pytest
from tornado import httpserver, web, websocket
from tornado.testing import bind_unused_port
from vae_lesson_jupyter import MESSAGE, _jupyter_server_extension_points, _load_jupyter_server_extension, without_nagle


class Connection:
    """Stands in for jupyter_server's kernel websocket connection: ``connect`` is called from the handler's open."""

    connected_with_nodelay = None

    def __init__(self, websocket_handler):
        self.websocket_handler = websocket_handler

    def connect(self):
        sock = self.websocket_handler.ws_connection.stream.socket
        type(self).connected_with_nodelay = bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        return "connected"


def nodelay_seen_by_a_real_websocket(connection_class) -> bool:
    """Open a tornado websocket whose handler connects ``connection_class``; the server socket's TCP_NODELAY."""

    class Handler(websocket.WebSocketHandler):
        def open(self):
            connection_class(self).connect()
            self.write_message("opened")

    async def run():
        sock, port = bind_unused_port()
        server = httpserver.HTTPServer(web.Application([("/ws", Handler)]))
        server.add_sockets([sock])
        try:
            client = await websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
            assert await client.read_message() == "opened"
            client.close()
        finally:
            server.stop()
        return connection_class.connected_with_nodelay

    return asyncio.run(run())


def test_tornado_keeps_nagle_on_by_default_so_the_extension_is_needed():
    assert nodelay_seen_by_a_real_websocket(Connection) is False


def test_the_wrapped_connection_switches_nagle_off_before_it_connects():
    wrapped = without_nagle(Connection)
    assert issubclass(wrapped, Connection) and wrapped.__name__ == "ConnectionWithoutNagle"
    assert nodelay_seen_by_a_real_websocket(wrapped) is True


def test_connect_returns_what_the_wrapped_class_returns_and_wrapping_twice_changes_nothing():
    calls = []

    class Base:
        def __init__(self, handler):
            self.websocket_handler = handler

        def connect(self):
            calls.append("connect")
            return "connected"

    handler = types.SimpleNamespace(ws_connection=object(), set_nodelay=lambda value: calls.append(value))
    wrapped = without_nagle(Base)
    assert wrapped(handler).connect() == "connected"
    assert calls == [True, "connect"], "TCP_NODELAY is set before the connection starts relaying messages"
    assert without_nagle(wrapped) is wrapped


def test_a_handler_whose_websocket_is_not_open_is_left_alone():
    class Base:
        def __init__(self, handler):
            self.websocket_handler = handler

        def connect(self):
            return "connected"

    handler = types.SimpleNamespace(ws_connection=None, set_nodelay=lambda value: pytest.fail("socket is not open"))
    assert without_nagle(Base)(handler).connect() == "connected"


def test_loading_the_extension_wraps_the_servers_connection_class(caplog):
    serverapp = types.SimpleNamespace(web_app=types.SimpleNamespace(settings={"kernel_websocket_connection_class":
                                                                              Connection}),
                                      log=logging.getLogger("fake-server"))
    with caplog.at_level(logging.INFO, logger="fake-server"):
        _load_jupyter_server_extension(serverapp)
    wrapped = serverapp.web_app.settings["kernel_websocket_connection_class"]
    assert issubclass(wrapped, Connection) and wrapped.sends_without_nagle
    assert MESSAGE in caplog.text
    assert _jupyter_server_extension_points() == [{"module": "vae_lesson_jupyter"}]


def test_a_server_without_a_connection_class_is_left_unchanged(caplog):
    serverapp = types.SimpleNamespace(web_app=types.SimpleNamespace(settings={}), log=logging.getLogger("fake-server"))
    with caplog.at_level(logging.WARNING, logger="fake-server"):
        _load_jupyter_server_extension(serverapp)
    assert serverapp.web_app.settings == {} and "unchanged" in caplog.text


def test_jupyter_in_this_environment_loads_the_extension():
    jupyter = shutil.which("jupyter", path=str(pathlib.Path(sys.executable).parent))
    command = [jupyter] if jupyter else [sys.executable, "-m", "jupyter"]
    result = subprocess.run([*command, "server", "extension", "list"], capture_output=True, text=True, timeout=120)
    listing = result.stdout + result.stderr
    line = next((line for line in listing.splitlines() if line.strip().startswith("vae_lesson_jupyter")), "")
    assert "enabled" in line, ("vae_lesson_jupyter is not enabled in this environment's Jupyter: "
                               "pip install -r requirements.txt installs it\n" + listing)
