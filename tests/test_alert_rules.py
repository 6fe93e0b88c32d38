"""Prometheus configuration and alert rules, checked and unit-tested by promtool."""
import shutil
import subprocess
from pathlib import Path

import yaml

PROMETHEUS = Path(__file__).resolve().parents[1] / "ops" / "prometheus"


def promtool(*args):
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: `make test` installs it (ops/bin/ensure-test-tools)"
    return subprocess.run([binary, *args], cwd=PROMETHEUS, capture_output=True, text=True)


def test_alert_rules_fire_and_stay_quiet_as_their_tests_say():
    result = promtool("test", "rules", "tests/shop-alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_and_config_files_are_valid():
    for args in (("check", "rules", "rules/shop-alerts.yml"), ("check", "config", "prometheus.yml")):
        result = promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_summary_a_runbook_section_and_both_kinds_of_test():
    rules = yaml.safe_load((PROMETHEUS / "rules" / "shop-alerts.yml").read_text())["groups"][0]["rules"]
    cases = [case for test in yaml.safe_load((PROMETHEUS / "tests" / "shop-alerts.test.yml").read_text())["tests"]
             for case in test["alert_rule_test"]]
    runbook = (PROMETHEUS.parent / "RUNBOOK.md").read_text()
    assert len(rules) >= 7
    for rule in rules:
        name = rule["alert"]
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["runbook_url"] == f"ops/RUNBOOK.md#{name.lower()}"
        assert f"\n## {name}\n" in runbook
        outcomes = {bool(case["exp_alerts"]) for case in cases if case["alertname"] == name}
        assert outcomes == {True, False}, f"{name} needs a firing and a quiet case"
