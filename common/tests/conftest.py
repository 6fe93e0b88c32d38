"""Fixtures for the shared code's tests: a real Kafka-protocol broker (Tansu) on a free port."""
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "ops"))

from stack import free_port, tansu_binary, wait_for_port  # noqa: E402


@pytest.fixture(scope="session")
def broker():
    port = free_port()
    process = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{port}", "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, 20, "tansu")
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(10)


