"""A real Prometheus scrapes the running test stack; every dashboard query and alert rule must work on it."""
import json
import re
import time
from pathlib import Path

import requests
import yaml
from prometheus_runner import RULES, query

OPS = Path(__file__).resolve().parents[1] / "ops"
DASHBOARDS = sorted((OPS / "grafana" / "dashboards").glob("*.json"))
METRIC_NAME = re.compile(r"\b(shop_[a-z_]+|up|process_[a-z_]+)\b")


def panel_queries():
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                yield path.stem, panel["title"], target["expr"].replace("$__rate_interval", "1m")


def make_traffic(api, admin):
    shopper, _ = api.new_shopper()
    product = admin.create_product(admin, stock=5)
    paid = shopper.place_order(product["id"]).json()
    declined = shopper.place_order(product["id"], payment_method="pm_card_chargeCustomerFail").json()
    api.get("/products")
    api.get(f"/products/{product['id']}")
    api.get(f"/products/{product['id']}")
    api.get("/no/such/route")
    for order in (paid, declined):
        shopper.wait_for_final(order["id"])


def test_three_dashboards_are_provisioned():
    assert {path.stem for path in DASHBOARDS} >= {"shop-overview", "shop-services", "shop-events"}
    datasources = yaml.safe_load((OPS / "grafana" / "provisioning" / "datasources" / "shop.yml").read_text())
    assert {ds["type"] for ds in datasources["datasources"]} == {"prometheus", "jaeger"}


def wait_for_samples(url, expr, at_least, timeout=60):
    """Until every series of ``expr`` has ``at_least`` samples in the last minute."""
    deadline = time.monotonic() + timeout
    while True:
        counts = query(url, f"count_over_time({expr}[1m])")
        if counts and min(float(c["value"][1]) for c in counts) >= at_least:
            return
        assert time.monotonic() < deadline, f"{expr}: {counts}"
        time.sleep(0.5)


def test_every_panel_and_rule_works_on_live_metrics(prometheus, api, admin, shop):
    # Traffic over several scrapes, so that rates and increases have two samples or more.
    wait_for_samples(prometheus.url, "up", 2)
    make_traffic(api, admin)
    wait_for_samples(prometheus.url, "shop_payments_total", 2)
    make_traffic(api, admin)
    wait_for_samples(prometheus.url, "shop_payments_total", 4)

    targets = query(prometheus.url, "up")
    expected = {(group["labels"]["job"], address) for group in json.loads(shop.targets_path.read_text())
                for address in group["targets"]}
    assert len(expected) == 1 + 5 * shop.replicas  # the gateway and every instance of each service
    assert {(t["metric"]["job"], t["metric"]["instance"]) for t in targets} == expected
    assert all(t["value"][1] == "1" for t in targets), targets

    empty = [(dashboard, title, expr) for dashboard, title, expr in panel_queries() if not query(prometheus.url, expr)]
    assert not empty, f"panels without data: {empty}; scrape durations: {query(prometheus.url, 'scrape_duration_seconds')}"

    groups = requests.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == len(yaml.safe_load(RULES.read_text())["groups"][0]["rules"])
    for rule in rules:
        assert rule["health"] == "ok", rule  # evaluated against the live data without error
        query(prometheus.url, rule["query"])
        for name in set(METRIC_NAME.findall(rule["query"])):
            assert query(prometheus.url, f"count({name})"), f"{rule['name']} reads {name}, which has no series"
