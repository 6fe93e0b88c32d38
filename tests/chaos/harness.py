"""The chaos suite's tools: a careful shopper's load, real faults, and the five invariants.

Every check reads the truth where it lives: the three services' databases,
localstripe's own records, and the Kafka topics themselves.
"""
import json
import random
import signal
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg2
import redis
import requests
from kafka import KafkaAdminClient, TopicPartition

from shop_common import testing
from shop_common.messaging import events

FINAL = ("PAID", "PAYMENT_FAILED", "CANCELLED")
GROUP_TOPICS = {"order_service": (events.INVENTORY_TOPIC, events.PAYMENTS_TOPIC),
                "inventory_service": (events.ORDERS_TOPIC,), "payment_service": (events.ORDERS_TOPIC,)}
DECLINED_CARD = "pm_card_chargeCustomerFail"


def dsn(url):
    return url.replace("postgresql+psycopg2://", "postgresql://")


def rows(url, sql, params=()):
    connection = psycopg2.connect(dsn(url))
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    finally:
        connection.close()


# -- the load -------------------------------------------------------------------------------------
@dataclass
class Request:
    """One order a shopper wants, and every attempt to place it (one Idempotency-Key)."""

    key: str
    shopper: object
    product_id: str
    quantity: int
    card: str
    attempts: list = field(default_factory=list)  # HTTP status, or the exception's name
    order_id: str = None

    @property
    def accepted(self):
        return self.order_id is not None


class Load:
    """A steady stream of orders from careful shoppers: scarce stock, some declined cards, and a
    failed POST retried with the same Idempotency-Key until it is answered or the budget runs out."""

    def __init__(self, api, products, shoppers=8, per_second=6.0, declined_share=0.15, retry_budget=120):
        self.api = api
        self.products = products
        self.shoppers = []
        for _ in range(shoppers):
            client, user = api.new_shopper()
            client.user_id = user["id"]
            self.shoppers.append(client)
        self.interval = shoppers / per_second
        self.declined_share = declined_share
        self.retry_budget = retry_budget
        self.requests = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def start(self, orders):
        per_shopper = [orders // len(self.shoppers) + (1 if i < orders % len(self.shoppers) else 0)
                       for i in range(len(self.shoppers))]
        for shopper, count in zip(self.shoppers, per_shopper):
            thread = threading.Thread(target=self._shop, args=(shopper, count), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def wait(self, timeout=600):
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self._threads):
            raise AssertionError("the load did not finish in time")
        return self.requests

    def placed(self):
        with self._lock:
            return len(self.requests)

    def _shop(self, shopper, count):
        for _ in range(count):
            started = time.monotonic()
            request = Request(key=str(uuid.uuid4()), shopper=shopper, product_id=random.choice(self.products)["id"],
                              quantity=random.choice((1, 1, 2)),
                              card=DECLINED_CARD if random.random() < self.declined_share else "pm_card_visa")
            with self._lock:
                self.requests.append(request)
            self._place(request)
            time.sleep(max(0.0, self.interval - (time.monotonic() - started)) * random.uniform(0.7, 1.3))

    def _place(self, request):
        deadline = time.monotonic() + self.retry_budget
        delay = 0.5
        while True:
            try:
                response = request.shopper.place_order(request.product_id, request.quantity, request.card,
                                                       headers={"Idempotency-Key": request.key})
                request.attempts.append(response.status_code)
                if response.status_code in (200, 202):
                    request.order_id = response.json()["id"]
                    return
                if response.status_code < 500 and response.status_code != 429:
                    return  # a clear no (sold out at the check): nothing to retry
            except requests.RequestException as exc:
                request.attempts.append(type(exc).__name__)
            if time.monotonic() + delay > deadline:
                return
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


# -- faults ---------------------------------------------------------------------------------------
class Faults:
    """Real faults on the running stack; each records what it did for the report."""

    def __init__(self, shop):
        self.shop = shop
        self.done = []
        self.last_ended = None  # time.monotonic() when the last fault was over

    def _record(self, what):
        self.done.append(what)
        self.last_ended = time.monotonic()

    def kill(self, process):
        """SIGKILL: a crash at whatever line the process was on; supervisord restarts it."""
        pid = self.shop.kill(process)
        self._record(f"SIGKILL {process.split(':')[-1]}")
        return pid

    def kill_repeatedly(self, program, times, every=(2.0, 4.0)):
        """Kill a random instance of ``program`` ``times`` times, waiting for it to come back in between."""
        for _ in range(times):
            time.sleep(random.uniform(*every))
            process = random.choice(self.shop.process_names(program))
            pid = self.kill(process)
            self.shop.wait_running(process, timeout=30, other_than=pid)

    @contextmanager
    def frozen(self, program, what):
        """SIGSTOP every process of a program (a hung broker, an unreachable provider), SIGCONT after.
        Unlike a stop, the process keeps its memory: Tansu its log, localstripe its payments."""
        processes = self.shop.process_names(program)
        for process in processes:
            self.shop.kill(process, signal.SIGSTOP)
        started = time.monotonic()
        try:
            yield
        finally:
            for process in processes:
                self.shop.kill(process, signal.SIGCONT)
            self._record(f"{what} for {time.monotonic() - started:.0f}s")

    @contextmanager
    def database_refusing(self, url, what):
        """The database refuses new connections and every open one is cut, until the block ends."""
        name = dsn(url).rsplit("/", 1)[1]
        admin = psycopg2.connect(dsn(url).rsplit("/", 1)[0] + "/postgres")
        admin.autocommit = True
        started = time.monotonic()
        try:
            with admin.cursor() as cursor:
                cursor.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            yield
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            admin.close()
            self._record(f"{what} for {time.monotonic() - started:.0f}s")

    def pause_redis(self, seconds):
        """CLIENT PAUSE: every client of this Redis server waits (reads and writes) for ``seconds``."""
        redis.Redis.from_url(self.shop.env["REDIS_URL"]).execute_command("CLIENT", "PAUSE", int(seconds * 1000), "ALL")
        time.sleep(seconds)
        self._record(f"Redis paused {seconds:.0f}s")

    def restart(self, program):
        self.shop.stop_program(program)
        self.shop.start_program(program)
        self._record(f"restart {program}")


# -- the invariants ---------------------------------------------------------------------------------
class Truth:
    """What the services, localstripe and Kafka hold about one experiment's orders."""

    def __init__(self, shop, stripe_client):
        self.shop = shop
        self.stripe = stripe_client
        self.env = shop.env

    def orders(self, ids):
        found = rows(self.env["ORDERS_DATABASE_URL"], """
            SELECT id, user_id, status, stock_status, payment_status, total_cents, idempotency_key, settled_at
            FROM orders WHERE id = ANY(%s)""", (list(ids),))
        return {row[0]: dict(zip(("id", "user_id", "status", "stock_status", "payment_status", "total_cents",
                                  "idempotency_key", "settled_at"), row)) for row in found}

    def orders_of_users(self, user_ids):
        return rows(self.env["ORDERS_DATABASE_URL"],
                    "SELECT id, user_id, idempotency_key FROM orders WHERE user_id = ANY(%s)", (list(user_ids),))

    def items(self, ids):
        return rows(self.env["ORDERS_DATABASE_URL"],
                    "SELECT order_id, product_id, quantity FROM order_items WHERE order_id = ANY(%s)", (list(ids),))

    def stock(self, product_ids):
        return dict(rows(self.env["PRODUCTS_DATABASE_URL"], "SELECT id, stock FROM products WHERE id = ANY(%s)",
                         (list(product_ids),)))

    def reservations(self, ids):
        return dict(rows(self.env["PRODUCTS_DATABASE_URL"],
                         "SELECT order_id, state FROM stock_reservations WHERE order_id = ANY(%s)", (list(ids),)))

    def payments(self, ids):
        return {row[0]: {"status": row[1], "intent_id": row[2]} for row in rows(
            self.env["PAYMENTS_DATABASE_URL"],
            "SELECT order_id, status, intent_id FROM payments WHERE order_id = ANY(%s)", (list(ids),))}

    def outbox_backlog(self):
        return {short: rows(self.env[f"{short.upper()}_DATABASE_URL"],
                            "SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0]
                for short in ("orders", "products", "payments")}

    def charges(self, ids):
        """localstripe's own word: per order, its succeeded intents with amount and refunded amount."""
        wanted, charges = set(ids), {}
        for intent in self.stripe.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter():
            order_id = intent.metadata.to_dict().get("order_id") if intent.metadata else None
            if order_id in wanted and intent.status == "succeeded":
                refunds = self.stripe.v1.refunds.list(params={"payment_intent": intent.id, "limit": 100}).data
                refunded = sum(refund.amount for refund in refunds if refund.status in ("succeeded", "pending"))
                charges.setdefault(order_id, []).append({"intent": intent.id, "amount": intent.amount,
                                                         "refunded": refunded})
        return charges

    def consumer_lag(self):
        """Per group and partition: messages in the log (read to its end) minus the committed offset.
        Read, not asked: Tansu's ListOffsets can answer low."""
        ends = {}
        for record in testing.records_of(self.env["KAFKA_BOOTSTRAP_SERVERS"], events.ORDERS_TOPIC,
                                         events.INVENTORY_TOPIC, events.PAYMENTS_TOPIC):
            tp = TopicPartition(record.topic, record.partition)
            ends[tp] = max(ends.get(tp, 0), record.offset + 1)
        admin = KafkaAdminClient(bootstrap_servers=self.env["KAFKA_BOOTSTRAP_SERVERS"])
        try:
            lag = {}
            for group, topics in GROUP_TOPICS.items():
                committed = admin.list_group_offsets(group).get(group, {})
                for tp, end in ends.items():
                    if tp.topic in topics:
                        done = committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0
                        lag[f"{group} {tp.topic}:{tp.partition}"] = max(end - done, 0)
            return lag
        finally:
            admin.close()

    def dead_letters(self, since_iso):
        """Dead letters written since ``since_iso``: [(headers, value)]."""
        letters = [({key: value.decode() for key, value in record.headers}, record.value)
                   for record in testing.records_of(self.env["KAFKA_BOOTSTRAP_SERVERS"], events.DEAD_LETTER_TOPIC)]
        return [letter for letter in letters if letter[0].get("x-dead-lettered-at", "") >= since_iso]


@dataclass
class Verdict:
    ok: bool
    detail: str = ""


class Experiment:
    """One run: its products and load, the faults done to it, and the invariants once it settles."""

    def __init__(self, name, shop, api, admin, stripe_client, products=4, stock_each=30):
        self.name = name
        self.shop, self.api, self.admin = shop, api, admin
        self.truth = Truth(shop, stripe_client)
        self.faults = Faults(shop)
        self.started_iso = events.now_iso()
        self.products = [admin.create_product(admin, stock=stock_each, price=f"{random.randint(5, 40)}.{random.randint(0, 99):02d}")
                         for _ in range(products)]
        self.initial_stock = {product["id"]: stock_each for product in self.products}
        self.load = None
        self.settle_seconds = None
        self.verdicts = {}

    def start_load(self, orders, **kwargs):
        self.load = Load(self.api, self.products, **kwargs).start(orders)
        return self.load

    def wait_until_placed(self, count, timeout=120):
        deadline = time.monotonic() + timeout
        while self.load.placed() < count:
            assert time.monotonic() < deadline, f"only {self.load.placed()} of {count} orders were tried"
            time.sleep(0.1)

    # -- settling ---------------------------------------------------------------------------------
    def settle(self, timeout=300):
        """Until every accepted order is settled and nothing waits in an outbox or a topic.

        Time to settle is counted from the end of the last fault (or of the load, if that is later:
        orders placed after the faults are part of what has to settle)."""
        self.load.wait()
        load_ended = started = time.monotonic()
        accepted = [request.order_id for request in self.load.requests if request.accepted]
        last = None
        while time.monotonic() - started < timeout:
            orders = self.truth.orders(accepted)
            unsettled = [order_id for order_id in accepted if not (orders.get(order_id) or {}).get("settled_at")]
            backlog = self.truth.outbox_backlog()
            lag = {} if unsettled else {k: v for k, v in self.truth.consumer_lag().items() if v}
            last = {"unsettled": len(unsettled), "backlog": backlog, "lag": lag}
            if not unsettled and not any(backlog.values()) and not lag:
                self.settle_seconds = time.monotonic() - max(load_ended, self.faults.last_ended or load_ended)
                return self.settle_seconds
            time.sleep(1.0)
        raise AssertionError(f"{self.name}: the shop did not settle within {timeout}s: {last}")

    # -- the five invariants ------------------------------------------------------------------------
    def check(self):
        requests_ = self.load.requests
        accepted = {request.order_id: request for request in requests_ if request.accepted}
        orders = self.truth.orders(accepted)
        reservations = self.truth.reservations(accepted)
        payments = self.truth.payments(accepted)
        charges = self.truth.charges(accepted)
        self.verdicts = {
            "I1": self._one_consistent_outcome(accepted, orders, reservations, payments),
            "I2": self._stock_adds_up(orders),
            "I3": self._money_adds_up(orders, charges),
            "I4": self._one_order_per_key(requests_),
            "I5": self._nothing_left_behind(),
        }
        return self.verdicts

    def _one_consistent_outcome(self, accepted, orders, reservations, payments):
        wrong = []
        for order_id in accepted:
            order, reservation, payment = orders.get(order_id), reservations.get(order_id), payments.get(order_id)
            if order is None or order["status"] not in FINAL:
                wrong.append(f"{order_id}: {order and order['status']}")
            elif order["status"] == "PAID":
                if reservation != "DEDUCTED" or (payment or {}).get("status") != "SUCCEEDED":
                    wrong.append(f"{order_id}: PAID with stock {reservation}, payment {payment}")
            elif reservation == "DEDUCTED" or (payment or {}).get("status") in ("SUCCEEDED", "REFUND_PENDING",
                                                                              "PROCESSING"):
                wrong.append(f"{order_id}: {order['status']} with stock {reservation}, payment {payment}")
        return Verdict(not wrong, "; ".join(wrong[:5]) or f"{len(accepted)} orders, each final and consistent")

    def _stock_adds_up(self, orders):
        paid = [order_id for order_id, order in orders.items() if order["status"] == "PAID"]
        sold = {}
        for _, product_id, quantity in self.truth.items(paid):
            sold[product_id] = sold.get(product_id, 0) + quantity
        stock = self.truth.stock(self.initial_stock)
        wrong = [f"{product_id}: {initial} != {stock[product_id]} + {sold.get(product_id, 0)} sold"
                 for product_id, initial in self.initial_stock.items()
                 if stock[product_id] < 0 or initial != stock[product_id] + sold.get(product_id, 0)]
        return Verdict(not wrong, "; ".join(wrong) or f"{sum(sold.values())} units sold, stock adds up")

    def _money_adds_up(self, orders, charges):
        wrong = []
        for order_id, order in orders.items():
            succeeded = charges.get(order_id, [])
            if len(succeeded) > 1:
                wrong.append(f"{order_id}: charged {len(succeeded)} times")
            for charge in succeeded:
                if charge["amount"] != order["total_cents"]:
                    wrong.append(f"{order_id}: charged {charge['amount']} for {order['total_cents']}")
                kept = charge["amount"] - charge["refunded"]
                if order["status"] == "PAID" and charge["refunded"]:
                    wrong.append(f"{order_id}: PAID but refunded {charge['refunded']}")
                if order["status"] != "PAID" and kept:
                    wrong.append(f"{order_id}: {order['status']} but {kept} kept")
            if order["status"] == "PAID" and not succeeded:
                wrong.append(f"{order_id}: PAID without a charge")
        refunded = sum(1 for order_charges in charges.values() for charge in order_charges if charge["refunded"])
        return Verdict(not wrong, "; ".join(wrong[:5]) or f"{sum(map(len, charges.values()))} charges, "
                                                           f"{refunded} refunded, none twice")

    def _one_order_per_key(self, requests_):
        by_key = {}
        for order_id, _, key in self.truth.orders_of_users({request.shopper.user_id for request in requests_}):
            by_key.setdefault(key, []).append(order_id)
        wrong = []
        for request in requests_:
            found = by_key.get(request.key, [])
            if len(found) > 1:
                wrong.append(f"key {request.key}: {len(found)} orders")
            elif request.accepted and found != [request.order_id]:
                wrong.append(f"key {request.key}: answered {request.order_id}, stored {found}")
            elif not request.accepted and found:
                wrong.append(f"key {request.key}: every attempt failed ({request.attempts}) but {found} exists")
        failed = sum(1 for request in requests_ if not request.accepted)
        return Verdict(not wrong, "; ".join(wrong[:5]) or f"{len(requests_)} keys, {failed} refused, no duplicate")

    def _nothing_left_behind(self):
        backlog = self.truth.outbox_backlog()
        lag = {key: value for key, value in self.truth.consumer_lag().items() if value}
        letters = self.truth.dead_letters(self.started_iso)
        unexplained = [headers for headers, _ in letters if not headers.get("x-error") or not headers.get("x-consumer")]
        ok = not any(backlog.values()) and not lag and not unexplained
        detail = (f"outbox {backlog}, lag {lag or 0}, {len(letters)} dead letters"
                  + (f", {len(unexplained)} without a reason" if unexplained else " each with its reason"))
        return Verdict(ok, detail)

    def report(self):
        requests_ = self.load.requests if self.load else []
        return {
            "experiment": self.name,
            "orders": sum(1 for request in requests_ if request.accepted),
            "requests": len(requests_),
            "faults": self.faults.done,
            "settle_seconds": None if self.settle_seconds is None else round(self.settle_seconds, 1),
            **{name: {"ok": verdict.ok, "detail": verdict.detail} for name, verdict in self.verdicts.items()},
        }

    def assert_invariants(self):
        self.check()
        broken = {name: verdict.detail for name, verdict in self.verdicts.items() if not verdict.ok}
        assert not broken, f"{self.name}: {json.dumps(broken, indent=1)}"
