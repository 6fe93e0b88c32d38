"""End-to-end fixtures: the whole shop on the test profile, driven over HTTP."""
import os
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ops"))

from otlp_receiver import OtlpReceiver  # noqa: E402
from prometheus_runner import LocalPrometheus  # noqa: E402
from stack import LOAD_TEST_LIMITS, PROFILES, Stack  # noqa: E402

ADMIN_EMAIL = "admin@shop.local"
FINAL = ("PAID", "PAYMENT_FAILED", "CANCELLED")
OPERATOR = "test-operator"  # who the tests' operator calls come from (the audit records it)


def pytest_collection_modifyitems(items):
    for item in items:
        if "shop" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)
    # The chaos experiments break things on purpose: they come after every other test.
    items.sort(key=lambda item: "/chaos/" in str(item.fspath))


@pytest.fixture(scope="session")
def otlp():
    """An OTLP/HTTP receiver on loopback; every process of the test stack exports its spans here."""
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def shop(otlp):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
           "OTEL_BSP_SCHEDULE_DELAY": "200",
           # Redrive stuck orders quickly, so the lost-event test need not wait a minute.
           "SHOP_REDRIVE_AFTER_SECONDS": "4", "SHOP_REDRIVE_INTERVAL_SECONDS": "1",
           # Short enough for a test to outwait the gateway.
           "SHOP_RPC_TIMEOUT_SECONDS": "6",
           # The chaos suite keeps a database away for longer than this (experiment 5).
           "KAFKA_MAX_POLL_INTERVAL_MS": "30000",
           # Payments: an abandoned 3-D Secure and a failing refund play out in seconds. Intents are
           # re-fetched only after a minute, so a payment settled sooner was settled by its webhook.
           "PAYMENT_ACTION_DEADLINE_SECONDS": "5", "REFUND_RETRY_SECONDS": "1", "MAX_REFUND_ATTEMPTS": "3",
           "SHOP_PAYMENT_CHECK_INTERVAL_SECONDS": "1", "PAYMENT_RECHECK_SECONDS": "60",
           # Reconciliation every 20 s over the last minute: localstripe (one Python process) takes about
           # 6 ms per intent to list, and under the chaos suite's load a shorter interval or a longer window
           # kept it busy enough to slow every charge down (settle times grew up to 15-fold).
           "SHOP_RECONCILE_INTERVAL_SECONDS": "20", "SHOP_RECONCILE_WINDOW_SECONDS": "60",
           "SHOP_RECONCILE_GRACE_SECONDS": "3", "SHOP_PAYMENT_GAUGES_INTERVAL_SECONDS": "2",
           # The session's admin and shoppers keep their first access token (the chaos suite runs 25 min).
           "SHOP_TOKEN_TTL_SECONDS": "3600",
           # As behind one load balancer: tests tell clients apart with X-Forwarded-For.
           "SHOP_TRUSTED_PROXIES": "1", **LOAD_TEST_LIMITS}
    # Two instances of every service, as in production, and a third in reserve for scaling out.
    # The second Order instance still sends OrderCreated v1, as during a rollout: both are on the wire.
    stack = Stack(PROFILES["test"], fresh=True, extra_env=env, replicas=int(os.environ.get("REPLICAS", 2)), spare=1,
                  instance_env={"svc_order-1": {"ORDER_CREATED_VERSION": "1"}})
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def prometheus(shop, tmp_path_factory):
    """A real Prometheus with the shop's rules, scraping every instance of the test stack each second."""
    server = LocalPrometheus(shop.targets_path, tmp_path_factory.mktemp("prometheus")).start()
    yield server
    server.stop()


class Api:
    def __init__(self, base_url, token=None):
        self.base_url = base_url
        self.token = token
        self.session = requests.Session()

    def request(self, method, path, token=None, **kwargs):
        headers = kwargs.pop("headers", {})
        token = token or self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.session.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def patch(self, path, **kwargs):
        return self.request("PATCH", path, **kwargs)

    def as_user(self, token):
        return Api(self.base_url, token)

    # -- conveniences -----------------------------------------------------
    def register(self, email=None, password="correct-horse-1", name="Test Shopper"):
        email = email or f"shopper-{uuid.uuid4().hex[:10]}@example.com"
        response = self.post("/auth/register", json={
            "email": email, "password": password, "name": name,
            "address": {"line1": "1 Main Street", "city": "Springfield", "postal_code": "12345", "country": "US"},
        })
        assert response.status_code == 201, response.text
        return email, password, response.json()

    def login(self, email, password):
        response = self.post("/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def new_shopper(self):
        email, password, user = self.register()
        return self.as_user(self.login(email, password)), user

    def create_product(self, admin, stock, price="10.00", currency="USD"):
        response = admin.post("/products", json={
            "sku": f"T-{uuid.uuid4().hex[:12]}", "name": f"Test product {uuid.uuid4().hex[:6]}",
            "description": "made by a test", "price": price, "currency": currency, "stock": stock,
        })
        assert response.status_code == 201, response.text
        return response.json()

    def place_order(self, product_id, quantity=1, payment_method="pm_card_visa", **kwargs):
        return self.post("/orders", json={"items": [{"product_id": product_id, "quantity": quantity}],
                                          "payment_method": payment_method}, **kwargs)

    def stock(self, product_id):
        return self.get(f"/products/{product_id}").json()["stock"]

    def wait_for_final(self, order_id, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            order = self.get(f"/orders/{order_id}").json()
            if order["status"] in FINAL:
                return order
            time.sleep(0.1)
        raise AssertionError(f"order {order_id} still {order['status']} after {timeout}s")


@pytest.fixture(scope="session")
def api(shop):
    return Api(shop.profile.gateway_url)


@pytest.fixture(scope="session")
def admin(api, shop):
    # The stack's own password, generated on its first run (ops/stack.py, .run/test/secrets.env).
    return api.as_user(api.login(ADMIN_EMAIL, shop.env["SHOP_ADMIN_PASSWORD"]))


@pytest.fixture
def shopper(api):
    client, _ = api.new_shopper()
    return client


@pytest.fixture(scope="session")
def rpc(shop):
    """Nameko RPC into the running test stack, as an operator would use it."""
    from nameko.standalone.rpc import ClusterRpcClient

    with ClusterRpcClient(uri=shop.env["AMQP_URI"], timeout=15, context_data={"operator": OPERATOR}) as client:  # shop_common.rpc.OPERATOR
        yield client


@pytest.fixture(scope="session")
def operator():
    """The name the ``rpc`` fixture's calls carry: what the audit must show."""
    return OPERATOR


@pytest.fixture(scope="session")
def stripe_client(shop):
    import stripe

    return stripe.StripeClient("sk_test_localstripe", base_addresses={"api": shop.env["STRIPE_API_BASE"]})


@pytest.fixture(scope="session")
def wait_for_rpc():
    """Poll an operator RPC until ``done(value)``; "not found yet" counts as not done.

    Returns the last value (None if it was never found) when done or at the timeout.
    """
    from shop_common.errors import DomainError

    def wait(fetch, done, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = fetch()
            except DomainError as exc:
                assert exc.code.endswith("not_found"), exc
                value = None
            if (value is not None and done(value)) or time.monotonic() > deadline:
                return value
            time.sleep(0.1)

    return wait


@pytest.fixture
def wait_for_payment(rpc, wait_for_rpc):
    """The order's payment once its status is one of ``statuses`` (status None if it never got there)."""
    def wait(order_id, statuses, timeout=30):
        payment = wait_for_rpc(lambda: rpc.payment_service.get_payment(order_id),
                               lambda found: found["status"] in statuses, timeout)
        return payment or {"status": None}
    return wait


@pytest.fixture
def fault_flags(rpc):
    """Switch fault flags as an operator would (any service answers); all off again afterwards."""
    yield rpc.order_service
    rpc.order_service.clear_faults()
