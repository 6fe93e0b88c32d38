"""The Payment service's charge path with its real store (PostgreSQL) and real Stripe client (localstripe)."""
import threading
import time

import pytest
import stripe
from nameko.testing.services import worker_factory
from sqlalchemy import select

from shop_common import testing
from shop_common.errors import PaymentBusy
from svc_payment.models import outbox
from svc_payment.service import PaymentService
from svc_payment.store import PaymentStore
from svc_payment.stripe_client import StripePayments


class SlowStripe(StripePayments):
    """Stripe taking 0.3 s to create anything: without the per-order lock, every concurrent worker
    would look for the order's intent before the first one exists, and create its own."""

    @staticmethod
    def _call(method, *args, **kwargs):
        if method.__name__ == "create":
            time.sleep(0.3)
        return StripePayments._call(method, *args, **kwargs)


@pytest.fixture
def service_factory(transactions_for, localstripe_url):
    transactions = transactions_for("payments")
    client = stripe.StripeClient("sk_test_unit", base_addresses={"api": localstripe_url})

    def new_worker():
        return worker_factory(PaymentService, payments=PaymentStore(transactions), provider=SlowStripe(client))

    new_worker.client = client
    new_worker.transactions = transactions
    return new_worker


def test_two_workers_charging_one_order_at_once_charge_it_once(service_factory):
    event = testing.order_created(unit_price_cents=2500)
    outcomes = []
    start = threading.Barrier(4)

    def deliver():  # as two instances, a rebalance and a redrive might, all at once
        worker = service_factory()
        start.wait()
        try:
            worker.on_order_created(event)
            outcomes.append("charged")
        except PaymentBusy:
            outcomes.append("busy")  # the Kafka entrypoint retries it; see below

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    service_factory().on_order_created(event)  # every retry finds the outcome and charges nothing
    assert "charged" in outcomes
    query = f"metadata['order_id']:'{event['order_id']}'"
    intents = service_factory.client.v1.payment_intents.search(params={"query": query}).data
    assert [intent.status for intent in intents] == ["succeeded"]
    with service_factory.transactions.begin() as session:
        sent = session.execute(select(outbox.c.event_type).where(outbox.c.message_key == event["order_id"])).all()
    assert [row.event_type for row in sent] == ["PaymentSuccess"]
