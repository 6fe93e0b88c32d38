"""A real headless Chromium driven over the DevTools protocol (for the tests): open a page, read what it logged
and evaluate JavaScript in it. Only what the docs-page test needs."""
import itertools
import json
import re
import shutil
import subprocess
import time

import websocket  # websocket-client

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--remote-debugging-port=0", "--user-data-dir={profile}", "about:blank"]


class Chromium:
    def __init__(self, profile_dir):
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        assert binary, "Chromium is missing: `make test` installs Debian's chromium (ops/bin/ensure-test-tools)"
        self.process = subprocess.Popen([binary] + [flag.format(profile=profile_dir) for flag in CHROMIUM_FLAGS],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.browser_url = self._devtools_url()
        self._ids = itertools.count(1)
        self.page = None
        self.events = []

    def _devtools_url(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stderr.readline()
            found = re.search(r"DevTools listening on (ws://\S+)", line)
            if found:
                return found.group(1)
        raise AssertionError("Chromium did not start its DevTools endpoint")

    def open(self, url, timeout=30):
        """Open ``url`` in a new tab with console, exceptions and network errors recorded."""
        browser = websocket.create_connection(self.browser_url, timeout=timeout)
        target = self._call(browser, "Target.createTarget", url="about:blank")["targetId"]
        browser.close()
        self.page = websocket.create_connection(self.browser_url.split("/devtools/")[0] + f"/devtools/page/{target}",
                                                timeout=timeout)
        for domain in ("Runtime", "Log", "Page"):
            self._call(self.page, f"{domain}.enable")
        self._call(self.page, "Page.navigate", url=url)
        self._wait_for_event("Page.loadEventFired", timeout)

    def evaluate(self, expression):
        result = self._call(self.page, "Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_until(self, expression, timeout=30):
        """Evaluate until truthy; the last value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.2)

    def errors(self):
        """Console errors, uncaught exceptions and error log entries (failed loads) seen so far."""
        found = []
        for method, params in self.events:
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append("console: " + " ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"]))
            elif method == "Runtime.exceptionThrown":
                found.append("exception: " + params["exceptionDetails"].get("exception", {}).get(
                    "description", params["exceptionDetails"]["text"]))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
        return found

    def _call(self, connection, method, **params):
        call_id = next(self._ids)
        connection.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(connection.recv())
            if message.get("id") == call_id:
                assert "error" not in message, message
                return message.get("result", {})
            if "method" in message:
                self.events.append((message["method"], message.get("params", {})))

    def _wait_for_event(self, method, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(seen == method for seen, _ in self.events):
                return
            message = json.loads(self.page.recv())
            if "method" in message:
                self.events.append((message["method"], message.get("params", {})))
        raise AssertionError(f"no {method} within {timeout}s")

    def close(self):
        if self.page is not None:
            self.page.close()
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
