"""A Jupyter server extension that lets notebook 07's explorers follow the pointer: no Nagle delay on kernel messages.

Why it exists. When you drag on a latent plane, the browser sends the point to the kernel, the kernel decodes it
(about a millisecond) and answers with three small messages: "busy", the new image, "idle". The Jupyter server
relays them to the browser over the kernel's websocket, whose TCP socket keeps Nagle's algorithm on: the second
small message waits until the browser acknowledges the first, and the browser delays that acknowledgement (40 ms
on Linux) because it has nothing to send back. So every answer took about 50 ms, and an explorer could never update
more than about 20 times a second, however fast the kernel. ``tests/test_browser.py`` measured it: a round trip of
50 ms with Nagle's algorithm on, about 20 ms without.

What it does: it switches Nagle's algorithm off (``TCP_NODELAY``) on every kernel websocket, the same one-line
setting tornado documents for latency-sensitive websockets, by wrapping the server's configured kernel websocket
connection class. It changes no message and no other setting, and imports nothing heavy (no torch): it runs in the
Jupyter server's process, not in the kernel.

How it is enabled: installing the course's package (``pip install -r requirements.txt``) puts
``jupyter_server_config.d/vae_lesson_jupyter.json`` into the environment's Jupyter config, so ``jupyter lab`` loads
it. ``jupyter server extension list`` shows it; ``jupyter server extension disable vae_lesson_jupyter`` turns it
off, and the explorers still work, at about 20 updates a second.
"""

from __future__ import annotations

MESSAGE = "vae_lesson_jupyter: kernel websockets send without Nagle's delay (TCP_NODELAY)"


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "vae_lesson_jupyter"}]


def without_nagle(base: type) -> type:
    """A subclass of the kernel websocket connection class ``base`` that sets ``TCP_NODELAY`` when it connects."""
    if getattr(base, "sends_without_nagle", False):
        return base

    class WithoutNagle(base):
        sends_without_nagle = True

        def connect(self):
            handler = getattr(self, "websocket_handler", None)
            if handler is not None and getattr(handler, "ws_connection", None) is not None:
                handler.set_nodelay(True)  # the websocket is open here (connect is called from the handler's open)
            return super().connect()

    WithoutNagle.__name__ = WithoutNagle.__qualname__ = f"{base.__name__}WithoutNagle"
    return WithoutNagle


def _load_jupyter_server_extension(serverapp) -> None:
    """Wrap the server's kernel websocket connection class (whatever it is: plain, or a gateway's)."""
    settings = serverapp.web_app.settings
    base = settings.get("kernel_websocket_connection_class")
    if base is None:
        serverapp.log.warning("vae_lesson_jupyter: this server has no kernel websocket connection class; unchanged")
        return
    settings["kernel_websocket_connection_class"] = without_nagle(base)
    serverapp.log.info(MESSAGE)
