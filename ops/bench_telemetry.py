"""``make bench-telemetry``: what metrics and tracing cost on simple requests, measured side by side.

Three copies of the shop run at once, each with its own databases, vhost and ports:

  bare     SHOP_METRICS=off, OTEL_SDK_DISABLED=true
  metrics  Prometheus metrics on, tracing off
  full     metrics on, tracing on, spans exported over OTLP/HTTP to a local receiver

The same requests go to each copy in interleaved rounds (bare, metrics, full,
bare, ...) so that the noise of a shared machine falls on all three alike.
Reported: median and p95 latency per request kind, their ratios to bare, and
the resident memory of each copy's service and gateway processes.
"""
import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).parent))

from otlp_receiver import OtlpReceiver  # noqa: E402
from stack import LOAD_TEST_LIMITS, ROOT, Profile, Stack  # noqa: E402

ADMIN_EMAIL = "admin@shop.local"
CONFIGS = {
    "bare": (Profile("bench_bare", "shop_bench_bare_", 12, "shop_bench_bare", 29092, 28420, 28000, 29100),
             {"SHOP_METRICS": "off", "OTEL_SDK_DISABLED": "true"}),
    "metrics": (Profile("bench_metrics", "shop_bench_metrics_", 13, "shop_bench_metrics", 29093, 28421, 28001, 29110),
                {"OTEL_SDK_DISABLED": "true"}),
    "full": (Profile("bench_full", "shop_bench_full_", 14, "shop_bench_full", 29094, 28422, 28002, 29120),
             {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}),
}


class Client:
    """A shopper and a product on one copy of the shop."""

    def __init__(self, base_url, admin_password):
        self.base = base_url
        self.http = requests.Session()
        admin = self._token({"email": ADMIN_EMAIL, "password": admin_password})
        product = self.http.post(f"{self.base}/products", headers=admin, json={
            "sku": f"BENCH-{random.randrange(10**9)}", "name": "Bench", "price": "1.00", "stock": 1_000_000}).json()
        self.product_id = product["id"]
        email = f"bench-{random.randrange(10**9)}@example.com"
        self.http.post(f"{self.base}/auth/register", json={
            "email": email, "password": "bench-password", "name": "Bench",
            "address": {"line1": "1", "city": "c", "postal_code": "p", "country": "US"}})
        self.auth = self._token({"email": email, "password": "bench-password"})

    def _token(self, credentials):
        token = self.http.post(f"{self.base}/auth/login", json=credentials).json()["access_token"]
        return {"Authorization": f"Bearer {token}"}

    def requests(self):
        return {
            "GET /products/<id> (cache hit, gateway only)":
                lambda: self.http.get(f"{self.base}/products/{self.product_id}"),
            "GET /users/me (JWT, 1 RPC, PostgreSQL)":
                lambda: self.http.get(f"{self.base}/users/me", headers=self.auth),
            "POST /orders (2 RPCs, transaction, outbox)":
                lambda: self.http.post(f"{self.base}/orders", headers=self.auth, json={
                    "items": [{"product_id": self.product_id, "quantity": 1}], "payment_method": "pm_card_visa"}),
        }


def timed(call, expected):
    started = time.perf_counter()
    response = call()
    elapsed = time.perf_counter() - started
    if response.status_code not in expected:
        raise RuntimeError(f"unexpected {response.status_code}: {response.text[:200]}")
    return elapsed


def resident_memory_mb(stack):
    groups = {pid for name, pid in stack.pids().items() if name.startswith(("svc_", "web_"))}
    listing = subprocess.run(["ps", "-eo", "pgid=,rss="], capture_output=True, text=True).stdout.split("\n")
    return sum(int(rss) for pgid, rss in (line.split() for line in listing if line.strip())
               if int(pgid) in groups) / 1024


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--per-round", type=int, default=40)
    args = parser.parse_args()

    receiver = OtlpReceiver().start()
    stacks = {}
    try:
        for name, (profile, env) in CONFIGS.items():
            if name == "full":
                env = dict(env, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
            print(f"[bench] starting the '{name}' copy of the shop", flush=True)
            stacks[name] = Stack(profile, fresh=True, extra_env={**env, **LOAD_TEST_LIMITS, "SHOP_TOKEN_TTL_SECONDS": "3600"}).start()
        clients = {name: Client(stack.profile.gateway_url, stack.env["SHOP_ADMIN_PASSWORD"]) for name, stack in stacks.items()}
        kinds = list(next(iter(clients.values())).requests())
        samples = {name: {kind: [] for kind in kinds} for name in clients}
        for name, client in clients.items():  # warm-up: connections, caches, JIT-free but pools
            for kind, call in client.requests().items():
                for _ in range(10):
                    timed(call, (200, 202))
        for round_number in range(args.rounds):
            for name in random.sample(list(clients), len(clients)):
                for kind, call in clients[name].requests().items():
                    for _ in range(args.per_round):
                        samples[name][kind].append(timed(call, (200, 202)))
            print(f"[bench] round {round_number + 1}/{args.rounds} done", flush=True)
        memory = {name: resident_memory_mb(stack) for name, stack in stacks.items()}
    finally:
        for stack in stacks.values():
            stack.stop()
        receiver.stop()

    report = {"rounds": args.rounds, "per_round": args.per_round, "spans_received": len(receiver.spans),
              "memory_mb": memory, "latency_ms": {}}
    print(f"\nlatency in ms, {args.rounds * args.per_round} requests per kind and copy "
          f"(ratio = copy / bare, same run)")
    print(f"{'request':48} {'copy':8} {'median':>8} {'p95':>8} {'median x':>9} {'p95 x':>7}")
    for kind in kinds:
        bare_median = statistics.median(samples["bare"][kind])
        bare_p95 = percentile(samples["bare"][kind], 0.95)
        for name in clients:
            median = statistics.median(samples[name][kind])
            p95 = percentile(samples[name][kind], 0.95)
            report["latency_ms"].setdefault(kind, {})[name] = {
                "median": round(median * 1000, 3), "p95": round(p95 * 1000, 3),
                "median_ratio": round(median / bare_median, 3), "p95_ratio": round(p95 / bare_p95, 3)}
            print(f"{kind:48} {name:8} {median * 1000:8.2f} {p95 * 1000:8.2f} "
                  f"{median / bare_median:9.2f} {p95 / bare_p95:7.2f}")
    print("\nresident memory of the five services and the gateway: " + ", ".join(
        f"{name} {mb:.0f} MB ({mb / memory['bare']:.2f}x)" for name, mb in memory.items()))
    print(f"spans received by the OTLP receiver from the 'full' copy: {len(receiver.spans)}")
    out = ROOT / ".run" / "bench" / "latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
