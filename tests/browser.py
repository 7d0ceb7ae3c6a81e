"""Headless Chromium driven over the DevTools protocol, with the network shut, for the
report's browser test (a page looked at as a person would, not parsed).

:func:`open_page` starts Debian's ``/usr/bin/chromium`` (``--headless`` with the flags that
keep it from calling home: no background networking, component updates, sync or QUIC; a
fresh profile), its DevTools server on loopback (``--remote-debugging-port=0``: Chromium
picks a port and writes it to ``DevToolsActivePort`` in the profile). Every request the
page could make is shut three ways and counted: DevTools' own network emulation is offline,
every host name resolves to nothing, and the proxy is a loopback socket of ours that
answers nothing and counts the connections it gets (:class:`Trap`).

A :class:`Page` keeps every DevTools event it saw (network requests, console calls,
exceptions, log entries, dialogs) for the test to assert on. Chromium and its children are
one process group of ours, ended by its id.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websocket

CHROMIUM = "/usr/bin/chromium"
START_TIMEOUT_S = 60.0  # first start on a loaded 2-core machine builds the profile
CALL_TIMEOUT_S = 60.0
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio",
         "--no-default-browser-check", "--hide-scrollbars")


def chromium_path() -> str | None:
    found = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    return found if found and os.access(found, os.X_OK) else None


class Trap:
    """A loopback listener that accepts, counts and closes every connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.connections = 0
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        self.sock.close()


@dataclass
class Page:
    ws: websocket.WebSocket
    events: list[dict[str, Any]] = field(default_factory=list)
    _next_id: int = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result (events read meanwhile are kept)."""
        self._next_id += 1
        ident = self._next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if "method" in message:
                self.events.append(message)
        raise TimeoutError(f"no answer to {method} in {CALL_TIMEOUT_S} s")

    def wait_event(self, method: str, timeout_s: float = CALL_TIMEOUT_S) -> dict[str, Any]:
        for event in self.events:
            if event["method"] == method:
                return event
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            message: dict[str, Any] = json.loads(self.ws.recv())
            if "method" in message:
                self.events.append(message)
                if message["method"] == method:
                    return message
        raise TimeoutError(f"no {method} in {timeout_s} s")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, dest: Path, clip: dict[str, float] | None = None) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if clip is not None:
            params |= {"clip": {**clip, "scale": 1}, "captureBeyondViewport": True}
        data = self.call("Page.captureScreenshot", **params)["data"]
        dest.write_bytes(base64.b64decode(data))
        return dest

    def named(self, *methods: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["method"] in methods]


def _devtools_port(profile: Path, proc: subprocess.Popen[bytes]) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode} before DevTools was up")
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(marker.read_text().split()[0])
        time.sleep(0.1)
    raise TimeoutError(f"chromium wrote no {marker} in {START_TIMEOUT_S} s")


def _page_socket(port: int) -> websocket.WebSocket:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list",
                                timeout=CALL_TIMEOUT_S) as answer:
        targets = json.load(answer)
    page = next(t for t in targets if t.get("type") == "page")
    # No Origin header: Chromium refuses DevTools sockets from other origins by default.
    return websocket.create_connection(page["webSocketDebuggerUrl"], timeout=CALL_TIMEOUT_S,
                                       suppress_origin=True, enable_multithread=False)


@contextlib.contextmanager
def open_page(profile: Path, *, width: int = 1280, height: int = 1600) -> Iterator[tuple[Page, Trap]]:
    """A blank page in a fresh headless Chromium, network shut, every event recorded."""
    binary = chromium_path()
    assert binary, "chromium is not installed"
    trap = Trap()
    proxy = f"127.0.0.1:{trap.port}"
    args = [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1", f"--window-size={width},{height}",
            f"--proxy-server=http://{proxy}", "--proxy-bypass-list=<-loopback>",
            "--host-resolver-rules=MAP * ~NOTFOUND", "about:blank"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    ws = None
    try:
        ws = _page_socket(_devtools_port(profile, proc))
        page = Page(ws)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.call(f"{domain}.enable")
        page.call("Network.emulateNetworkConditions", offline=True, latency=0,
                  downloadThroughput=-1, uploadThroughput=-1)
        yield page, trap
    finally:
        if ws is not None:
            ws.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # chromium's own group: its children too
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        trap.close()
