"""A localstripe process of its own for the Payment service's tests that talk to Stripe."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "ops"))

from stack import free_port, wait_for_port  # noqa: E402


@pytest.fixture(scope="session")
def localstripe_url():
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "ops" / "localstripe_server.py"),
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, 20, "localstripe")
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(10)
