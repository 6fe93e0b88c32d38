"""The chaos suite: each experiment runs a steady order load on the test stack (two instances of
every service), breaks something for real, waits for the shop to settle and asserts I1-I5.

The experiments marked ``chaos_slow`` run only in ``make chaos``; the others run in ``make test``
as well. Each experiment's figures are printed as a table at the end and written to
.run/chaos/latest.json.
"""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import Experiment  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = []
COLUMNS = ("experiment", "orders", "faults", "settle", "I1", "I2", "I3", "I4", "I5")


def pytest_collection_modifyitems(items):
    for item in items:
        if "/chaos/" in str(item.fspath):
            item.add_marker(pytest.mark.chaos)


@pytest.fixture
def experiment(request, shop, api, admin, stripe_client, fault_flags):
    """One experiment on the shared stack; its report is kept for the table whatever happens."""
    made = []

    def make(**kwargs):
        made.append(Experiment(request.node.name.removeprefix("test_"), shop, api, admin, stripe_client, **kwargs))
        return made[0]

    yield make
    for run in made:
        RESULTS.append(run.report())


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    out = ROOT / ".run" / "chaos"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(RESULTS, indent=1))
    rows = [(result["experiment"], str(result["orders"]), ", ".join(result["faults"]) or "-",
             "-" if result["settle_seconds"] is None else f"{result['settle_seconds']}s",
             *[("ok" if result[name]["ok"] else "BROKEN") if name in result else "-"
               for name in ("I1", "I2", "I3", "I4", "I5")]) for result in RESULTS]
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(COLUMNS)]
    terminalreporter.section("chaos experiments")
    for line in [COLUMNS, tuple("-" * width for width in widths), *rows]:
        terminalreporter.write_line("  ".join(cell.ljust(width) for cell, width in zip(line, widths)))
    terminalreporter.write_line(f"(details per invariant in {out / 'latest.json'})")
