"""Fixtures for the shared code's tests: a real Kafka-protocol broker (Tansu) on a free port."""
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "ops"))

from stack import free_port, tansu_binary, wait_for_port  # noqa: E402


def start_tansu(port=None):
    """A broker of our own on ``port`` (default: a free one): (process, "127.0.0.1:port")."""
    port = port or free_port()
    process = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{port}", "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, 20, "tansu")
    return process, f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def broker():
    process, address = start_tansu()
    yield address
    process.terminate()
    process.wait(10)


@pytest.fixture
def start_broker():
    """start_tansu, for a test that restarts its own broker on the same port."""
    return start_tansu


@pytest.fixture
def own_broker():
    """A broker this test alone uses, so it may freeze or kill it: (process, address)."""
    process, address = start_tansu()
    yield process, address
    process.kill()
    process.wait(10)


