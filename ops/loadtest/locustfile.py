"""Locust scenarios of ``make bench`` (ops/bench.py picks them by class name and sets the load).

Run one by hand against ``make run`` (admin password and product ids from the running shop):

    BENCH_PRODUCT_IDS=<id>,<id> .venv/bin/locust -f ops/loadtest/locustfile.py --host http://127.0.0.1:8000 \
        --headless -u 20 -r 20 -t 30s CachedList

Each scenario is one kind of request (or one shopper's journey), so its figures stand alone:
``CachedList``, ``CachedProduct``, ``UncachedList``, ``Accounts`` (register then log in), ``Buyer``
(place an order, then poll it to its final status as a shopper's app would), ``Shopper`` (mostly
browsing, some orders) and ``Floor`` (the bare Flask + Redis app of floor.py).
"""
import itertools
import os
import random
import time
import uuid
from pathlib import Path

import gevent
from locust import FastHttpUser, constant, constant_throughput, task

PRODUCT_IDS = [each for each in os.environ.get("BENCH_PRODUCT_IDS", "").split(",") if each]
# Shoppers' access tokens, made before the load starts (one per line): logging in is an argon2 check
# of about a quarter of a CPU second, which would swamp what an order phase measures. Without the
# file, each user registers and logs in when it starts.
TOKENS = Path(os.environ["BENCH_TOKENS_FILE"]).read_text().split() if os.environ.get("BENCH_TOKENS_FILE") else []
_next_user = itertools.count()
# Orders per second per Buyer when BENCH_ORDER_RATE is set (offered load = users x rate); else as fast as it can.
ORDER_RATE = float(os.environ.get("BENCH_ORDER_RATE", "0"))
POLL_SECONDS = 0.25
FINAL = ("PAID", "PAYMENT_FAILED", "CANCELLED")
PASSWORD = "bench-password-0"


class ShopUser(FastHttpUser):
    abstract = True
    wait_time = constant(0)

    def register_and_login(self):
        email = f"bench-{uuid.uuid4().hex}@example.com"
        self.client.post("/auth/register", json={
            "email": email, "password": PASSWORD, "name": "Bench Shopper",
            "address": {"line1": "1 Load Street", "city": "Testville", "postal_code": "12345", "country": "US"}},
            name="POST /auth/register")
        with self.client.post("/auth/login", json={"email": email, "password": PASSWORD}, name="POST /auth/login",
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"login {response.status_code}")
                return None
            return {"Authorization": f"Bearer {response.json()['access_token']}"}

    def product_id(self):
        return random.choice(PRODUCT_IDS)


class CachedList(ShopUser):
    @task
    def first_page(self):
        self.client.get("/products?page=1&page_size=20", name="GET /products (cached)")


class CachedProduct(ShopUser):
    @task
    def product(self):
        self.client.get(f"/products/{self.product_id()}", name="GET /products/<id> (cached)")


class UncachedList(ShopUser):
    @task
    def search(self):
        # A search nobody made before: the gateway misses, the Product service queries PostgreSQL.
        self.client.get(f"/products?page=1&page_size=20&q={uuid.uuid4().hex[:8]}", name="GET /products?q= (miss)")


class Accounts(ShopUser):
    @task
    def register_and_log_in(self):
        self.register_and_login()


class Floor(ShopUser):
    @task
    def page(self):
        self.client.get("/page", name="GET /page (floor)")


class OrderingUser(ShopUser):
    """A shopper with an account; each order placed is followed by a greenlet polling it until it is final."""

    abstract = True

    def on_start(self):
        self.auth = None
        if TOKENS:
            self.auth = {"Authorization": f"Bearer {TOKENS[next(_next_user) % len(TOKENS)]}"}
        while self.auth is None:
            self.auth = self.register_and_login()

    def place_order(self):
        with self.client.post("/orders", headers=self.auth, name="POST /orders", catch_response=True, json={
                "items": [{"product_id": self.product_id(), "quantity": 1}], "payment_method": "pm_card_visa"}) as response:
            if response.status_code != 202:
                response.failure(f"{response.status_code}: {response.text[:200]}")
                return
            placed = time.perf_counter()
            gevent.spawn(self.follow, response.json()["id"], placed)

    def follow(self, order_id, placed):
        while self.environment.runner is None or self.environment.runner.state != "stopped":
            gevent.sleep(POLL_SECONDS)
            response = self.client.get(f"/orders/{order_id}", headers=self.auth, name="GET /orders/<id> (poll)")
            if response.status_code == 200 and response.json()["status"] in FINAL:
                self.environment.events.request.fire(
                    request_type="ORDER", name="placed -> final (polled)", response_length=0, exception=None,
                    response_time=(time.perf_counter() - placed) * 1000, context={})
                return


class Buyer(OrderingUser):
    wait_time = constant_throughput(ORDER_RATE) if ORDER_RATE else constant(0)

    @task
    def place_and_follow(self):
        self.place_order()


class Shopper(OrderingUser):
    """A shopper's visit: mostly browsing (cached pages, product pages, a search), now and then an order."""

    wait_time = constant(0.5)

    @task(6)
    def browse(self):
        self.client.get(f"/products?page={random.randint(1, 2)}&page_size=20", name="GET /products (cached)")

    @task(6)
    def look_at_a_product(self):
        self.client.get(f"/products/{self.product_id()}", name="GET /products/<id> (cached)")

    @task(2)
    def search(self):
        self.client.get(f"/products?q={random.choice(['keyboard', 'mouse', 'lamp', 'mug'])}",
                        name="GET /products?q= (popular)")

    @task(1)
    def place_and_follow(self):
        self.place_order()
