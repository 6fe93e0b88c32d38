"""A throw-away Prometheus with the shop's alert rules, scraping one running shop (tests, chaos runs).

It reads the targets ops/stack.py writes for that shop (file_sd), so it sees
every instance, including ones started later.
"""
import shutil
import subprocess
import time
from pathlib import Path

import requests
import yaml

from stack import free_port

RULES = Path(__file__).resolve().parent / "prometheus" / "rules" / "shop-alerts.yml"


class LocalPrometheus:
    def __init__(self, targets_path, workdir, scrape_interval="1s"):
        self.targets_path = targets_path
        self.workdir = Path(workdir)
        self.scrape_interval = scrape_interval
        self.process = None
        self.url = None

    def start(self, timeout=30):
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is missing: `make test` installs it (ops/bin/ensure-test-tools)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "shop", "file_sd_configs": [{"files": [str(self.targets_path)]}]}],
        }
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        self.process = subprocess.Popen(
            [binary, f"--config.file={self.workdir / 'prometheus.yml'}", f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=open(self.workdir / "prometheus.log", "wb"), stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError((self.workdir / "prometheus.log").read_text())
            time.sleep(0.2)

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    def query(self, expr):
        return query(self.url, expr)

    def alerts(self):
        """Every alert that is pending or firing now: [{"labels", "state", ...}]."""
        return requests.get(f"{self.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"]


def query(url, expr):
    body = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    if body["status"] != "success":
        raise AssertionError(f"{expr}: {body}")
    return body["data"]["result"]
