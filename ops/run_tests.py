"""`make test`: the tests that need no stack beside the end-to-end ones, in two pytest processes.

They share nothing: the unit tests have their own databases (shop_unit_*), brokers (a Tansu each on
a free port), Redis db 14 and no gateway; the end-to-end tests have the test stack (shop_test_*,
Redis db 15, vhost shop_test, ports 18000...). The unit tests mostly wait on brokers and rebalances,
so beside the end-to-end run they cost little: the whole suite takes about as long as its longer half.
The unit run's report follows the end-to-end one's; either failing fails `make test`.
"""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / ".run" / "unit-tests.log"


def main():
    LOG.parent.mkdir(parents=True, exist_ok=True)
    pytest = [sys.executable, "-m", "pytest"]
    with LOG.open("w") as log:
        unit = subprocess.Popen(pytest + ["-m", "not e2e and not chaos_slow"], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            end_to_end = subprocess.run(pytest + ["-m", "e2e and not chaos_slow"], cwd=ROOT).returncode
        finally:
            unit_code = unit.wait()
    print("\n==================== tests without the stack (ran alongside) ====================", flush=True)
    print(LOG.read_text(), flush=True)
    print(f"[make test] end-to-end: exit {end_to_end}; without the stack: exit {unit_code}", flush=True)
    sys.exit(end_to_end or unit_code)


if __name__ == "__main__":
    main()
