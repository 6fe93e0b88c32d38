"""Schemathesis against the live stack's /openapi.json, as a shopper and as an admin (ops/fuzz.py), then the
logs of the whole run read for what must never be in them."""
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))

import fuzz  # noqa: E402

# Bounded for `make test` (about 700 generated requests each); `make fuzz` runs the long campaign.
MAX_EXAMPLES = 6
NEVER_LOGGED = {
    "a password hash": re.compile(r"\$argon2"),
    "a token": re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*"),
    "an email address": re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    "a Stripe secret": re.compile(r"\bsk_(test|live)_\w+|\bwhsec_\w+"),
}


def test_no_server_error_and_every_answer_as_documented_then_no_secret_in_any_log(shop, admin):
    runs = fuzz.campaign(shop.profile.gateway_url, shop.env["SHOP_ADMIN_PASSWORD"], MAX_EXAMPLES,
                         "examples,coverage,fuzzing")
    for run in runs:
        print(f"{run.role}: {run.test_cases} test cases, {run.failures} failures")
        assert run.passed and run.failures == 0, run.output[-8000:]
        assert run.test_cases > 400, run.output[-3000:]  # it really ran
    leaks = []
    for log in sorted(Path(shop.log_dir).glob("*.log")):
        for number, line in enumerate(log.read_text(errors="replace").splitlines(), 1):
            leaks += [f"{log.name}:{number}: {what}" for what, pattern in NEVER_LOGGED.items()
                      if pattern.search(line)]
    assert not leaks, leaks[:10]
