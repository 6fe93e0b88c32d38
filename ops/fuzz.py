"""Schemathesis against the shop's own /openapi.json, as a shopper and as an admin.

``make fuzz`` starts its own copy of the shop (profile ``fuzz``) and runs a long campaign, stateful
links included, then prints the totals; the test suite runs a bounded one against its stack
(tests/test_fuzz.py). Every check Schemathesis has by default applies: no 5xx, every status, header
and body as documented, schema-valid requests accepted and invalid ones refused. Its settings are in
ops/schemathesis.toml.
"""
import argparse
import re
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parent))

from stack import LOAD_TEST_LIMITS, ROOT, Profile, Stack  # noqa: E402

CONFIG = ROOT / "ops" / "schemathesis.toml"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# Logging out everywhere and changing the password revoke the very token the fuzzer sends, after which
# it would test nothing but 401s; tests/test_users.py covers both.
ENDS_ITS_OWN_SESSION = ["--exclude-name", "POST /auth/logout", "--exclude-name", "POST /users/me/password"]
PROFILE = Profile("fuzz", "shop_fuzz_", 11, "shop_fuzz", 39092, 38420, 38000, 39100)


@dataclass
class Campaign:
    role: str
    exit_code: int
    test_cases: int
    failures: int
    output: str

    @property
    def passed(self):
        return self.exit_code == 0


def shopper_token(base_url):
    email = f"fuzz-{uuid.uuid4().hex[:10]}@example.com"
    password = "fuzz-password-1"
    requests.post(f"{base_url}/auth/register", timeout=10, json={
        "email": email, "password": password, "name": "Fuzz",
        "address": {"line1": "1 Fuzz St", "city": "Fuzzton", "postal_code": "00000", "country": "US"}},
    ).raise_for_status()
    return login(base_url, email, password)


def login(base_url, email, password):
    response = requests.post(f"{base_url}/auth/login", json={"email": email, "password": password}, timeout=10)
    response.raise_for_status()
    return response.json()["access_token"]


def run(base_url, token, role, max_examples, phases="examples,coverage,fuzzing", workers=1, seed=None):
    """One Schemathesis run with this bearer token; its totals. One worker: Hypothesis parses lambdas'
    sources with ``ast``, which CPython 3.11 can break when threads do it at once (seen here)."""
    argv = [str(SCHEMATHESIS), "--no-color", "--config-file", str(CONFIG), "run", f"{base_url}/openapi.json",
            "-H", f"Authorization: Bearer {token}", "--max-examples", str(max_examples), "--phases", phases,
            "--workers", str(workers)] + (["--seed", str(seed)] if seed is not None else []) + ENDS_ITS_OWN_SESSION
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    output = done.stdout + done.stderr
    generated = re.search(r"(\d+) generated", output)
    failures = re.search(r"(\d+) failures?\b", output.split("SUMMARY")[-1])
    return Campaign(role, done.returncode, int(generated.group(1)) if generated else 0,
                    int(failures.group(1)) if failures else 0, output)


def campaign(base_url, admin_password, max_examples, phases, seed=None):
    """The shopper's run and the admin's, side by side: [Campaign, Campaign]."""
    tokens = {"shopper": shopper_token(base_url), "admin": login(base_url, "admin@shop.local", admin_password)}
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(run, base_url, token, role, max_examples, phases, seed=seed)
                for role, token in tokens.items()]
        return [future.result() for future in runs]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=600, help="per operation and phase")
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    args = parser.parse_args()
    stack = Stack(PROFILE, fresh=True, extra_env=LOAD_TEST_LIMITS)
    print(f"[fuzz] starting the fuzz copy of the shop ({PROFILE.gateway_url})", flush=True)
    stack.start()
    try:
        runs = campaign(PROFILE.gateway_url, stack.env["SHOP_ADMIN_PASSWORD"], args.max_examples, args.phases)
    finally:
        stack.stop()
    for result in runs:
        if not result.passed:
            print(result.output)
    for result in runs:
        print(f"[fuzz] {result.role:8} {result.test_cases:7} test cases, {result.failures} failures "
              f"(exit {result.exit_code})")
    total = sum(result.test_cases for result in runs)
    print(f"[fuzz] total    {total:7} test cases, {sum(r.failures for r in runs)} failures")
    sys.exit(0 if all(result.passed for result in runs) else 1)


if __name__ == "__main__":
    main()
