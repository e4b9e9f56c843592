"""A headless Chromium driven through the DevTools protocol, to use the UI as a person.

Only what the UI tests need: open a page, wait for text, click what a person would click
(a button or tab by its words), read the page, take a screenshot. Chromium comes from
Debian (`apt-get install chromium`); `.ci/run` installs it when it is missing. The
browser runs in its own session and is stopped by its process group.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from cnpj_assets_tests.dagster_processes import stop_group, wait_for

CHROMIUM = shutil.which("chromium")

CLICK = """(words) => {
  const all = [...document.querySelectorAll('button, a, [role="tab"], [role="menuitem"]')];
  const target = all.find((e) => e.innerText && e.innerText.trim() === words && !e.disabled);
  if (!target) return false;
  target.click();
  return true;
}"""


class Browser:
    """One headless Chromium page."""

    def __init__(self, profile: Path, height: int = 1200) -> None:
        """A page in a window 1600 pixels wide; lists the UI virtualizes render only the rows
        the window's `height` shows."""
        if CHROMIUM is None:
            raise RuntimeError("Chromium is not installed: apt-get install chromium")
        self.process = subprocess.Popen(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-crash-reporter",
                f"--window-size=1600,{height}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.connection = ExitStack()
        try:
            self.socket: ClientConnection = self.connection.enter_context(
                connect(self._page(profile)["webSocketDebuggerUrl"], max_size=None)
            )
        except BaseException:
            self.close()  # a browser that never answered is not left running
            raise
        self.ids = itertools.count(1)

    @staticmethod
    def _page(profile: Path) -> dict[str, Any]:
        port_file = profile / "DevToolsActivePort"
        port = wait_for(  # the file may exist a moment before its port is written in it
            "Chromium's DevTools port",
            lambda: next(iter(port_file.read_text().split()), None),
            60,
            0.2,
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            return next(t for t in json.load(answer) if t["type"] == "page")

    def close(self) -> None:
        self.connection.close()
        stop_group(self.process)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command and its answer (events arriving meanwhile are dropped)."""
        call_id = next(self.ids)
        self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == call_id:
                assert "error" not in message, message["error"]
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def wait_for_text(self, *words: str, seconds: float = 90) -> str:
        return wait_for(
            f"the page to show {words}",
            lambda: (text := self.text()) and all(w in text for w in words) and text,
            seconds,
            every=1,
        )

    def click(self, words: str, seconds: float = 60) -> None:
        """Click the button, link, tab or menu item that reads exactly `words`."""
        wait_for(
            f"something to click that reads {words!r}",
            lambda: self.evaluate(f"({CLICK})({json.dumps(words)})"),
            seconds,
            every=1,
        )

    def dismiss(self, words: str) -> bool:
        """Click `words` if the page shows it now (a dialog that may or may not appear)."""
        return bool(self.evaluate(f"({CLICK})({json.dumps(words)})"))

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def settle(self, seconds: float = 1.0) -> None:
        time.sleep(seconds)
