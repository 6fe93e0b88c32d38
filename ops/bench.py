"""``make bench``: the shop under load beside this machine's own limits, measured in one run.

1. The limits: a bare Flask app serving one Redis GET under the gateway's WSGI server and worker
   model (``ops/loadtest/floor.py``), a raw kombu request/reply round trip on this RabbitMQ, and
   pgbench's simple-update load on this PostgreSQL.
2. A copy of the shop of its own (one instance per service, ports 48000...): memory and latency at
   rest, one Nameko RPC round trip, then Locust scenarios (``ops/loadtest/locustfile.py``) at their
   maximum, orders at a fixed offered load (``--order-rate``) and at their maximum, and a mixed shopper.

For the order phases the CPU time of every process on the machine is read from /proc before and
after (the shop's processes, Kafka, localstripe, RabbitMQ, PostgreSQL, Redis; Locust apart), and
the time from placement to final status is read from the Order database (``created_at`` to
``settled_at``). Every figure is printed beside its limit and its goal (issue 10), and written to
``.run/bench/<date>.json``. No test asserts a timing: this is a measurement, not a check.
"""
import argparse
import datetime
import json
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).parent))

from stack import LOAD_TEST_LIMITS, ROOT, Profile, Stack, free_port, wait_for_port  # noqa: E402

PROFILE = Profile("bench", "shop_bench_", 10, "shop_bench", 49092, 48420, 48000, 49100)
BIN = Path(sys.executable).parent
LOCUSTFILE = ROOT / "ops" / "loadtest" / "locustfile.py"
OUT_DIR = ROOT / ".run" / "bench"
ADMIN_EMAIL = "admin@shop.local"
AT_REST_ORDER_PAUSE_SECONDS = 0.3  # between orders placed at rest: several times a settled saga's time
HTTP_USERS = 32  # twice the gateway's 2 workers x 8 threads: every thread busy, a queue in front
SHOPPERS = 64  # accounts made before the load, shared by the order and shopper phases


def progress(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else None


# -- Locust ------------------------------------------------------------------------------------------
def locust(scenario, host, users, seconds, env=None):
    """Run one scenario headless; its per-request-name figures from Locust's CSV."""
    prefix = Path(tempfile.mkdtemp(prefix="shop-bench-")) / scenario
    argv = [str(BIN / "locust"), "-f", str(LOCUSTFILE), "--headless", "--host", host, "-u", str(users),
            "-r", str(users), "-t", f"{seconds}s", "--stop-timeout", "5", "--csv", str(prefix),
            "--only-summary", "--loglevel", "WARNING", scenario]
    process = subprocess.Popen(argv, env=dict(os.environ, **(env or {})), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    next_report = started + 10
    while process.poll() is None:
        time.sleep(0.5)
        if time.monotonic() >= next_report:
            progress(f"  {scenario}: {time.monotonic() - started:.0f}/{seconds} s")
            next_report += 10
    errors = process.stderr.read()
    rows = {}
    with open(f"{prefix}_stats.csv") as stats:
        header = stats.readline().strip().split(",")
        for line in stats:
            values = dict(zip(header, line.strip().split(",")))
            if values["Name"] == "Aggregated":
                continue
            count = int(values["Request Count"])
            rows[values["Name"]] = {
                "requests": count, "failures": int(values["Failure Count"]),
                "per_second": round(float(values["Requests/s"]), 1),
                "p50_ms": _number(values["50%"]), "p95_ms": _number(values["95%"]), "p99_ms": _number(values["99%"])}
    failures = sum(row["failures"] for row in rows.values())
    if failures:
        progress(f"  {scenario}: {failures} failed requests; see {prefix}_failures.csv")
    if process.returncode not in (0, 1) or not rows:  # 1: some requests failed
        raise RuntimeError(f"locust {scenario} exited {process.returncode}: {errors[-2000:]}")
    return rows


def _number(text):
    return None if text in ("N/A", "") else float(text)


# -- the machine's limits -----------------------------------------------------------------------------
def floor(seconds, redis_url, page):
    """The cached page's floor: the same WSGI server and worker model serving one Redis GET."""
    import redis

    redis.Redis.from_url(redis_url).set("shop:bench:floor-page", page)
    port = free_port()
    env = dict(os.environ, REDIS_URL=redis_url)
    server = subprocess.Popen([str(BIN / "gunicorn"), "-k", "gthread", "-w", os.environ.get("SHOP_GATEWAY_WORKERS", "2"),
                               "--threads", os.environ.get("SHOP_GATEWAY_THREADS", "8"), "--keep-alive", "75",
                               "-b", f"127.0.0.1:{port}", "--log-level", "warning", "floor:app"],
                              cwd=ROOT / "ops" / "loadtest", env=env)
    try:
        wait_for_port(port, 20, "the floor app")
        return locust("Floor", f"http://127.0.0.1:{port}", HTTP_USERS, seconds)["GET /page (floor)"]
    finally:
        server.terminate()
        server.wait(10)


def _echo_server(amqp_uri, queue_name, ready):
    from kombu import Connection, Queue

    with Connection(amqp_uri) as connection:
        queue = Queue(queue_name, auto_delete=True)
        producer = connection.Producer(serializer="json")

        def reply(body, message):
            producer.publish(body, routing_key=message.properties["reply_to"],
                             correlation_id=message.properties["correlation_id"])
            message.ack()

        with connection.Consumer(queue, callbacks=[reply], accept=["json"]):
            ready.set()
            while True:
                connection.drain_events()


def kombu_round_trip(amqp_uri, count=1000):
    """p50 of a raw request/reply over RabbitMQ with kombu: the transport's own cost, nothing else."""
    from kombu import Connection, Queue

    queue_name = f"bench-echo-{uuid.uuid4().hex[:8]}"
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=_echo_server, args=(amqp_uri, queue_name, ready), daemon=True)
    server.start()
    ready.wait(20)
    samples = []
    try:
        with Connection(amqp_uri) as connection:
            replies = Queue(f"bench-reply-{uuid.uuid4().hex[:8]}", exclusive=True, auto_delete=True)
            received = []
            with connection.Consumer(replies, callbacks=[lambda body, message: (received.append(body), message.ack())],
                                     accept=["json"]):
                producer = connection.Producer(serializer="json")
                for number in range(count):
                    started = time.perf_counter()
                    producer.publish({"n": number}, routing_key=queue_name, reply_to=replies.name,
                                     correlation_id=str(number))
                    while len(received) <= number:
                        connection.drain_events(timeout=5)
                    samples.append(time.perf_counter() - started)
    finally:
        server.terminate()
    return statistics.median(samples[100:]) * 1000


def pgbench(seconds):
    """This PostgreSQL's simple-update transactions per second (pgbench -N, 8 clients)."""
    import psycopg2

    name = "shop_bench_pgbench"
    connection = psycopg2.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    base = ["-h", "127.0.0.1", "-U", "postgres"]
    subprocess.run(["pgbench", *base, "-i", "-q", "-s", "10", name], check=True, capture_output=True)
    result = subprocess.run(["pgbench", *base, "-N", "-c", "8", "-j", "2", "-T", str(seconds), name],
                            check=True, capture_output=True, text=True)
    return float(re.search(r"tps = ([\d.]+)", result.stdout).group(1))


# -- processes: CPU and memory ------------------------------------------------------------------------
POLLS = "GET /orders/<id> (poll)"  # the Buyer's request name in ops/loadtest/locustfile.py
INFRASTRUCTURE = {"rabbitmq": ("beam.smp", "epmd", "erl_child_setup", "inet_gethost"),
                  "postgresql": ("postgres",), "redis": ("redis-server",)}


def process_groups(stack):
    """{group: [psutil.Process]}: each shop component with its children, Kafka, localstripe, the infrastructure."""
    groups = {}
    for info in stack.ctl.getAllProcessInfo():
        if info["statename"] != "RUNNING":
            continue
        try:
            parent = psutil.Process(info["pid"])
            groups.setdefault(info["group"], []).extend([parent, *parent.children(recursive=True)])
        except psutil.NoSuchProcess:
            pass
    for group, names in INFRASTRUCTURE.items():
        groups[group] = [process for process in psutil.process_iter(["name"]) if process.info["name"] in names]
    return groups


def per_group(groups, measure):
    """The sum of ``measure(process)`` over each group's processes still running."""
    total = {}
    for group, processes in groups.items():
        for process in processes:
            try:
                total[group] = total.get(group, 0.0) + measure(process)
            except psutil.NoSuchProcess:
                pass
    return total


def cpu_seconds(groups):
    return per_group(groups, lambda process: sum(process.cpu_times()[:2]))  # user + system


def memory_mb(groups):
    """Proportional set size (shared pages split between their users), per group."""
    found = per_group(groups, lambda process: process.memory_full_info().pss / 2**20)
    return {group: round(mb, 1) for group, mb in found.items()}


SHOP_PROCESSES = ("web_gateway", "svc_user", "svc_product", "svc_inventory", "svc_order", "svc_payment")


# -- the shop -----------------------------------------------------------------------------------------
class Shop:
    def __init__(self, stack):
        self.stack = stack
        self.base = stack.profile.gateway_url
        self.http = requests.Session()
        admin = self.login(ADMIN_EMAIL, stack.env["SHOP_ADMIN_PASSWORD"])
        self.product_ids = [self.http.post(f"{self.base}/products", headers=admin, json={
            "sku": f"BENCH-{uuid.uuid4().hex[:10]}", "name": f"Bench item {number}", "price": "1.00",
            "currency": "USD", "stock": 10_000_000}).json()["id"] for number in range(8)]
        self.auth = self.new_shopper()
        with ThreadPoolExecutor(4) as pool:  # argon2 hashing: each takes a good part of a CPU second
            tokens = list(pool.map(lambda _: self.new_shopper()["Authorization"].split()[1], range(SHOPPERS)))
        self.tokens_file = Path(tempfile.mkdtemp(prefix="shop-bench-")) / "tokens"
        self.tokens_file.write_text("\n".join(tokens))

    def new_shopper(self):
        email = f"bench-{uuid.uuid4().hex}@example.com"
        requests.post(f"{self.base}/auth/register", timeout=30, json={
            "email": email, "password": "bench-password-0", "name": "Bench",
            "address": {"line1": "1", "city": "c", "postal_code": "p", "country": "US"}}).raise_for_status()
        return self.login(email, "bench-password-0")

    def login(self, email, password):
        response = requests.post(f"{self.base}/auth/login", json={"email": email, "password": password})
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def timed(self, count, method, path, pause=0.0, **kwargs):
        samples = []
        for _ in range(count):
            time.sleep(pause)
            started = time.perf_counter()
            response = self.http.request(method, self.base + path, timeout=30, **kwargs)
            samples.append(time.perf_counter() - started)
            if response.status_code >= 300:
                raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:200]}")
        return round(statistics.median(samples) * 1000, 2)

    def locust_env(self):
        return {"BENCH_PRODUCT_IDS": ",".join(self.product_ids), "BENCH_TOKENS_FILE": str(self.tokens_file)}

    def at_rest(self):
        """Latency of one request at a time. An order is placed once the one before it has settled
        (its saga takes 60-80 ms at rest; AT_REST_ORDER_PAUSE_SECONDS apart): placed back to back, the
        orders' own sagas kept both cores busy, so that figure, kept beside it, is a loaded shop's."""
        order = {"items": [{"product_id": self.product_ids[0], "quantity": 1}], "payment_method": "pm_card_visa"}
        self.timed(20, "POST", "/orders", headers=self.auth, json=order)  # warm: pools, caches, consumers
        time.sleep(3)  # the warm-up orders settle
        spaced = self.timed(100, "POST", "/orders", pause=AT_REST_ORDER_PAUSE_SECONDS, headers=self.auth, json=order)
        return {"POST /orders p50_ms": spaced,
                "POST /orders back to back p50_ms": self.timed(200, "POST", "/orders", headers=self.auth, json=order),
                "GET /users/me p50_ms": self.timed(200, "GET", "/users/me", headers=self.auth),
                "GET /products/<id> (cached) p50_ms": self.timed(200, "GET", f"/products/{self.product_ids[0]}")}

    def rpc_round_trip(self, count=1000):
        """p50 of a trivial call through the gateway's own RPC client, as the gateway's user."""
        from web_gateway.rpc import RpcClients

        clients, samples = RpcClients(self.stack.amqp_uri("web_gateway"), timeout=10), []
        try:
            for _ in range(count):
                started = time.perf_counter()
                clients.call("order_service", "health")
                samples.append(time.perf_counter() - started)
        finally:
            clients.discard()
        return statistics.median(samples[100:]) * 1000

    def orders_between(self, started, ended):
        """Orders placed in [started, ended] (UTC datetimes): how many, how many final, placement -> final."""
        import psycopg2

        connection = psycopg2.connect(self.stack.profile.database_url("orders").replace("+psycopg2", ""))
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT status, EXTRACT(EPOCH FROM settled_at - created_at) FROM orders "
                           "WHERE created_at BETWEEN %s AND %s", (started, ended))
            rows = [(status, None if latency is None else float(latency)) for status, latency in cursor.fetchall()]
        connection.close()
        return rows

    def settled_between(self, started, ended):
        import psycopg2

        connection = psycopg2.connect(self.stack.profile.database_url("orders").replace("+psycopg2", ""))
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM orders WHERE settled_at BETWEEN %s AND %s", (started, ended))
            (count,) = cursor.fetchone()
        connection.close()
        return count

    def order_phase(self, name, users, seconds, rate=None, profile_dir=None):
        """Orders through Locust; CPU of every process over the phase and until every order is final."""
        groups = process_groups(self.stack)
        profilers = profile(self.stack, profile_dir, seconds) if profile_dir else []
        before = cpu_seconds(groups)
        machine_before = psutil.cpu_times()
        started = datetime.datetime.now(datetime.timezone.utc)
        env = self.locust_env()
        if rate:
            env["BENCH_ORDER_RATE"] = str(rate / users)
        figures = locust("Buyer", self.base, users, seconds, env)
        ended = datetime.datetime.now(datetime.timezone.utc)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = self.orders_between(started, ended)
            if all(latency is not None for _, latency in rows):
                break
            time.sleep(0.5)
        after = cpu_seconds(groups)
        machine = psutil.cpu_times()
        for profiler in profilers:
            profiler.wait(30)
        latencies = [latency for _, latency in rows if latency is not None]
        warm = started + datetime.timedelta(seconds=5)
        cpu = {group: round(after.get(group, 0) - before.get(group, 0), 2) for group in groups}
        busy = sum(getattr(machine, f) - getattr(machine_before, f) for f in ("user", "system", "nice", "irq", "softirq"))
        completed = len(latencies)
        shop_cpu = sum(cpu.values())
        return {
            "scenario": name, "users": users, "seconds": seconds, "offered_per_second": rate,
            "requests": figures,
            "orders_placed": len(rows), "orders_final": completed,
            "orders_paid": sum(1 for status, _ in rows if status == "PAID"),
            "final_per_second": round(self.settled_between(warm, ended) / (ended - warm).total_seconds(), 1),
            "placement_to_final_ms": {"p50": _ms(percentile(latencies, 0.5)), "p95": _ms(percentile(latencies, 0.95)),
                                      "p99": _ms(percentile(latencies, 0.99))},
            "cpu_seconds": cpu,
            "cpu_ms_per_order": round(shop_cpu / completed * 1000, 1) if completed else None,
            "cpu_ms_per_order_by_process": {group: round(seconds_ / completed * 1000, 2) for group, seconds_ in cpu.items()}
            if completed else {},
            "machine_busy_ms_per_order": round(busy / completed * 1000, 1) if completed else None,
            # The buyers' status polls are load too, and grow with the time orders wait (locustfile.POLL_SECONDS).
            "status_polls_per_order": round(figures.get(POLLS, {}).get("requests", 0) / len(rows), 1) if rows else None,
        }


def profile(stack, directory, seconds):
    """py-spy on each shop process for the phase: collapsed stacks (``<process>.txt``) and a summary."""
    directory.mkdir(parents=True, exist_ok=True)
    started = []
    for info in stack.ctl.getAllProcessInfo():
        if info["statename"] == "RUNNING" and info["group"] in SHOP_PROCESSES:
            started.append(subprocess.Popen(
                [str(BIN / "py-spy"), "record", "--format", "raw", "--rate", "50", "--nonblocking", "--subprocesses",
                 "--duration", str(seconds), "--pid", str(info["pid"]), "-o", str(directory / f"{info['name']}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return started


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000, 1)


def code_version():
    """The commit measured, "+changes" when the checkout differs from it: runs compared side by side must
    say which code each one ran. None outside a git checkout."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+changes" if changed else "")


def report(result):
    limits, shop = result["limits"], result["shop"]
    lines = ["", f"make bench, {result['date']} on {result['machine']}, code {result.get('code')}", ""]

    def row(what, figure, limit=None, goal=""):
        ratio = f"{figure / limit:6.2f}" if figure and limit else "      "
        lines.append(f"  {what:58} {figure if figure is not None else '-':>10} "
                     f"{limit if limit is not None else '':>10} {ratio}  {goal}")

    lines.append(f"  {'':58} {'shop':>10} {'limit':>10} {'ratio':>6}  goal")
    cached_list = shop["browse"]["GET /products (cached)"]
    cached_product = shop["product"]["GET /products/<id> (cached)"]
    miss = shop["uncached"]["GET /products?q= (miss)"]
    floor_rps = limits["floor"]["per_second"]
    row("P1 cached GET /products, req/s (limit: Flask+Redis floor)", cached_list["per_second"], floor_rps, ">= 0.80")
    row("P1 cached GET /products/<id>, req/s", cached_product["per_second"], floor_rps, ">= 0.80")
    row("P1 cached GET /products p50 ms (limit: floor p50)", cached_list["p50_ms"], limits["floor"]["p50_ms"])
    row("P1 HIT vs MISS: MISS p50 ms / HIT p50 ms", miss["p50_ms"], cached_list["p50_ms"], ">= 5")
    fixed, peak = shop["orders_fixed"], shop["orders_max"]
    row(f"P2 orders/s to final at max ({peak['users']} buyers)", peak["final_per_second"], None, ">= 150")
    row("P2 CPU ms per completed order, all processes, at max", peak["cpu_ms_per_order"], None, "<= 13")
    if peak["cpu_ms_per_order"] is not None:  # production talks to Stripe, not to this double
        row("P2 the same without localstripe", round(
            peak["cpu_ms_per_order"] - peak["cpu_ms_per_order_by_process"].get("localstripe", 0), 1), None)
    row(f"P2 placement -> final p99 ms at {fixed['offered_per_second']}/s offered",
        fixed["placement_to_final_ms"]["p99"], None, "<= 1000")
    row(f"P2 orders/s to final at {fixed['offered_per_second']}/s offered", fixed["final_per_second"],
        fixed["offered_per_second"])
    rest = shop["at_rest"]
    row("P3 POST /orders p50 ms at rest (one order settled before the next)", rest["POST /orders p50_ms"], None,
        "<= 20")
    row("P3 Nameko RPC round trip p50 ms (limit: raw kombu)", round(shop["rpc_round_trip_ms"], 3),
        round(limits["kombu_round_trip_ms"], 3), "<= 3")
    row("P4 memory of the shop at rest, MB (PSS, 1 instance each)", shop["memory_mb_shop"], None, "<= 1024")
    lines.append("")
    lines.append(f"  pgbench -N (8 clients): {limits['pgbench_tps']:.0f} tps; "
                 f"POST /orders back to back p50 {rest.get('POST /orders back to back p50_ms')} ms; "
                 f"GET /users/me p50 at rest {rest['GET /users/me p50_ms']} ms; "
                 f"cached product p50 at rest {rest['GET /products/<id> (cached) p50_ms']} ms")
    for name in ("browse", "product", "uncached", "accounts", "shopper"):
        for request_name, figures in shop[name].items():
            lines.append(f"  {name:9} {request_name:36} {figures['per_second']:8} /s  p50 {figures['p50_ms']} "
                         f"p95 {figures['p95_ms']} p99 {figures['p99_ms']} ms  ({figures['failures']} failed)")
    for phase in (fixed, peak):
        lines.append(f"  orders ({phase['users']} buyers, offered {phase['offered_per_second'] or 'max'}): "
                     f"{phase['orders_placed']} placed, {phase['orders_final']} final ({phase['orders_paid']} paid), "
                     f"{phase['final_per_second']}/s, placement->final p50/p95/p99 "
                     f"{phase['placement_to_final_ms']['p50']}/{phase['placement_to_final_ms']['p95']}/"
                     f"{phase['placement_to_final_ms']['p99']} ms, CPU {phase['cpu_ms_per_order']} ms/order "
                     f"(machine busy {phase['machine_busy_ms_per_order']} ms/order), "
                     f"{phase['status_polls_per_order']} status polls per order")
        lines.append("      CPU ms per order: " + ", ".join(
            f"{group} {ms}" for group, ms in sorted(phase["cpu_ms_per_order_by_process"].items(), key=lambda kv: -kv[1])))
    lines.append("  memory at rest, MB (PSS): " + ", ".join(f"{group} {mb}" for group, mb in shop["memory_mb"].items()))
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=20, help="length of each HTTP scenario")
    parser.add_argument("--order-seconds", type=int, default=30, help="length of each order phase")
    parser.add_argument("--order-rate", type=float, default=50, help="orders per second offered in the fixed-load phase")
    parser.add_argument("--buyers", type=int, default=48, help="Locust users placing orders at maximum")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy each shop process during the maximum order phase (.run/bench/profile/)")
    args = parser.parse_args()
    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB",
              "code": code_version(), "limits": {}, "shop": {}}
    limits, shop_figures = result["limits"], result["shop"]

    progress("limits: raw kombu round trip on this RabbitMQ")
    limits["kombu_round_trip_ms"] = kombu_round_trip("amqp://guest:guest@127.0.0.1:5672//")
    progress("limits: pgbench -N on this PostgreSQL")
    limits["pgbench_tps"] = pgbench(10)

    progress("starting a copy of the shop (one instance per service)")
    stack = Stack(PROFILE, fresh=True, replicas=1,
                  extra_env={**LOAD_TEST_LIMITS, "SHOP_TOKEN_TTL_SECONDS": "3600"}).start()
    try:
        shop = Shop(stack)
        page = shop.http.get(f"{shop.base}/products?page=1&page_size=20").content
        progress(f"limits: bare Flask + Redis floor ({len(page)}-byte page, the shop's first catalogue page)")
        limits["floor"] = floor(args.seconds, stack.env["REDIS_URL"], page)
        progress("at rest: latency, RPC round trip, memory")
        shop_figures["at_rest"] = shop.at_rest()
        shop_figures["rpc_round_trip_ms"] = shop.rpc_round_trip()
        time.sleep(3)
        groups = process_groups(stack)
        shop_figures["memory_mb"] = memory_mb(groups)
        shop_figures["memory_mb_shop"] = round(sum(mb for group, mb in shop_figures["memory_mb"].items()
                                                   if group in SHOP_PROCESSES + ("kafka", "localstripe")), 1)
        env = shop.locust_env()
        for key, scenario, users in (("browse", "CachedList", HTTP_USERS), ("product", "CachedProduct", HTTP_USERS),
                                     ("uncached", "UncachedList", HTTP_USERS), ("accounts", "Accounts", 8)):
            progress(f"{scenario}: {users} users, {args.seconds} s")
            shop_figures[key] = locust(scenario, shop.base, users, args.seconds, env)
        progress(f"orders at {args.order_rate:g}/s offered, {args.order_seconds} s")
        shop_figures["orders_fixed"] = shop.order_phase("Buyer", max(10, int(args.order_rate)), args.order_seconds,
                                                        rate=args.order_rate)
        progress(f"orders at maximum: {args.buyers} buyers, {args.order_seconds} s")
        shop_figures["orders_max"] = shop.order_phase("Buyer", args.buyers, args.order_seconds,
                                                      profile_dir=OUT_DIR / "profile" if args.profile else None)
        progress(f"mixed shoppers: 64 users, {args.order_seconds} s")
        shop_figures["shopper"] = locust("Shopper", shop.base, 64, args.order_seconds, env)
    finally:
        stack.stop()
    text = report(result)
    print(text)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"{result['date'].replace(':', '')}.json"
    out.write_text(json.dumps(result, indent=2))
    (OUT_DIR / "latest.txt").write_text(text + "\n")
    progress(f"written to {out}")


if __name__ == "__main__":
    main()
