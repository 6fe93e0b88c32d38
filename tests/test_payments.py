"""Payments as Stripe behaves: 3-D Secure, bank debits that settle later, signed webhooks, refunds that fail.

Against the running test stack and its localstripe, whose webhooks reach
the gateway signed with the stack's secret. Where localstripe sends no
event (requires_action, disputes, replays), the test signs one exactly as
Stripe does and posts it to the gateway.
"""
import hashlib
import hmac
import json
import time
import uuid

import psycopg2
import pytest
import requests


def signature(payload, secret, timestamp=None):
    """A Stripe-Signature header: ``t=<unix time>,v1=<HMAC-SHA256 of "t.payload">``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def stripe_event(event_type, data_object):
    return {"id": f"evt_test_{uuid.uuid4().hex}", "object": "event", "type": event_type,
            "created": int(time.time()), "data": {"object": data_object}}


@pytest.fixture(scope="module")
def webhook(shop, api):
    secret = shop.env["STRIPE_WEBHOOK_SECRET"]

    def post(event, sign_with=secret, timestamp=None, header=None):
        payload = json.dumps(event).encode()
        headers = {"Content-Type": "application/json"}
        if header is not None or sign_with is not None:
            headers["Stripe-Signature"] = header or signature(payload, sign_with, timestamp)
        return api.post("/webhooks/stripe", data=payload, headers=headers)

    return post


@pytest.fixture(scope="module")
def payments_db(shop):
    connection = psycopg2.connect(shop.env["PAYMENTS_DATABASE_URL"].replace("+psycopg2", ""))
    connection.autocommit = True
    yield lambda sql, *args: _query(connection, sql, args)
    connection.close()


def _query(connection, sql, args):
    with connection.cursor() as cursor:
        cursor.execute(sql, args)
        return cursor.fetchall()


@pytest.fixture(scope="module")
def localstripe(shop):
    base = shop.env["STRIPE_API_BASE"]

    class LocalStripe:
        def authenticate(self, intent_id, client_secret, success=True):
            response = requests.post(f"{base}/v1/payment_intents/{intent_id}/_authenticate",
                                     data={"client_secret": client_secret, "success": str(success).lower()},
                                     auth=("sk_test_localstripe", ""), timeout=10)
            assert response.status_code == 200, response.text

        def fail_refunds(self, intent_id, count):
            response = requests.post(f"{base}/_config/refund_failures",
                                     data={"payment_intent": intent_id, "count": count}, timeout=10)
            assert response.status_code == 200, response.text

    return LocalStripe()


def wait_for(fetch, done, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def wait_for_action(shopper, order_id):
    order = wait_for(lambda: shopper.get(f"/orders/{order_id}").json(),
                     lambda order: order["payment"]["status"] == "requires_action")
    assert order["status"] == "PENDING" and order["payment"]["status"] == "requires_action", order
    assert "confirm the payment with your bank" in order["message"]
    return order


def payment_metrics(shop):
    """The metrics text of every Payment instance."""
    program = shop.programs["svc_payment"]
    return "".join(requests.get(f"http://127.0.0.1:{shop.metrics_port(program, index)}/metrics", timeout=5).text
                   for index in range(shop.replicas))


def payment_gauge(shop, sample):
    """The largest value across Payment instances of one sample, e.g. 'name{label="value"}' (0 if absent)."""
    values = [float(line.rsplit(" ", 1)[1]) for line in payment_metrics(shop).splitlines()
              if line.startswith(sample + " ")]
    return max(values, default=0.0)


def history_types(rpc, order_id):
    return [entry["event_type"] for entry in rpc.order_service.get_order_with_history(order_id)["history"]]


# -- 3-D Secure -----------------------------------------------------------------
def test_three_d_secure_authenticated_is_paid(shopper, admin, rpc, localstripe, stripe_client):
    product = admin.create_product(admin, stock=3)
    placed = shopper.place_order(product["id"], payment_method="pm_card_authenticationRequired").json()
    order = wait_for_action(shopper, placed["id"])
    payment = order["payment"]
    assert payment["client_secret"].startswith("pi_") and payment["next_action"]["type"] == "use_stripe_sdk"
    assert payment["expires_at"]
    intent_id = payment["client_secret"].split("_secret_")[0]

    localstripe.authenticate(intent_id, payment["client_secret"])  # what Stripe.js does for the shopper
    final = shopper.wait_for_final(placed["id"])
    assert final["status"] == "PAID" and final["payment"] == {"status": "succeeded"}  # the secret is gone
    assert stripe_client.v1.payment_intents.retrieve(intent_id).status == "succeeded"
    assert history_types(rpc, placed["id"]).count("PaymentSuccess") == 1
    assert shopper.stock(product["id"]) == 2


def test_three_d_secure_abandoned_is_cancelled_at_the_deadline(shopper, admin, rpc, stripe_client,
                                                                wait_for_payment):
    product = admin.create_product(admin, stock=3)
    placed = shopper.place_order(product["id"], payment_method="pm_card_authenticationRequired").json()
    wait_for_action(shopper, placed["id"])
    final = shopper.wait_for_final(placed["id"], timeout=40)  # the stack's deadline is 5 s
    assert final["status"] == "PAYMENT_FAILED"
    payment = wait_for_payment(placed["id"], ("FAILED",))
    assert payment["failure_code"] == "authentication_abandoned"
    assert stripe_client.v1.payment_intents.retrieve(payment["intent_id"]).status == "canceled"
    assert wait_for(lambda: shopper.stock(product["id"]), lambda stock: stock == 3) == 3


def test_three_d_secure_failed_authentication_fails_the_payment(shopper, admin, localstripe):
    product = admin.create_product(admin, stock=3)
    placed = shopper.place_order(product["id"], payment_method="pm_card_authenticationRequired").json()
    payment = wait_for_action(shopper, placed["id"])["payment"]
    localstripe.authenticate(payment["client_secret"].split("_secret_")[0], payment["client_secret"], success=False)
    # localstripe sends no event for a failed authentication: the payment timer's re-fetch or the deadline finds it.
    assert shopper.wait_for_final(placed["id"], timeout=40)["status"] == "PAYMENT_FAILED"


def test_an_order_cancelled_while_waiting_for_3ds_cancels_the_intent(shopper, admin, rpc, stripe_client,
                                                                     wait_for_payment):
    product = admin.create_product(admin, stock=3)
    placed = shopper.place_order(product["id"], payment_method="pm_card_authenticationRequired").json()
    wait_for_action(shopper, placed["id"])
    rpc.order_service.cancel_order(placed["id"], "customer called: wrong address")
    assert shopper.get(f"/orders/{placed['id']}").json()["status"] == "CANCELLED"
    payment = wait_for_payment(placed["id"], ("VOIDED",))
    assert payment["status"] == "VOIDED"  # never charged, and never will be
    assert stripe_client.v1.payment_intents.retrieve(payment["intent_id"]).status == "canceled"
    assert wait_for(lambda: shopper.stock(product["id"]), lambda stock: stock == 3) == 3


# -- asynchronous outcomes and webhooks -------------------------------------------------
def test_a_bank_debit_stays_pending_until_its_webhook_settles_it(shopper, admin, stripe_client, payments_db):
    product = admin.create_product(admin, stock=3)
    method = stripe_client.v1.payment_methods.create(params={
        "type": "sepa_debit", "sepa_debit": {"iban": "DE89370400440532013000"}})
    placed = shopper.place_order(product["id"], payment_method=method.id).json()
    # Intents are re-fetched only after a minute here: PAID within seconds means the webhook did it.
    final = shopper.wait_for_final(placed["id"], timeout=20)
    assert final["status"] == "PAID"
    applied = payments_db("SELECT event_type FROM stripe_events WHERE order_id = %s", placed["id"])
    assert ("payment_intent.succeeded",) in applied


def test_webhooks_before_during_and_after_the_outcome_converge(shopper, admin, rpc, localstripe, webhook):
    product = admin.create_product(admin, stock=3)
    placed = shopper.place_order(product["id"], payment_method="pm_card_authenticationRequired").json()
    payment = wait_for_action(shopper, placed["id"])["payment"]
    intent_id = payment["client_secret"].split("_secret_")[0]
    intent = {"id": intent_id, "object": "payment_intent", "metadata": {"order_id": placed["id"]}}

    # Before: an event claiming success while Stripe still waits for the shopper changes nothing.
    assert webhook(stripe_event("payment_intent.succeeded", intent)).status_code == 200
    assert shopper.get(f"/orders/{placed['id']}").json()["payment"]["status"] == "requires_action"
    # During: the shopper authenticates while events keep arriving.
    localstripe.authenticate(intent_id, payment["client_secret"])
    answers = [webhook(stripe_event("payment_intent.succeeded", intent)).status_code for _ in range(3)]
    assert set(answers) <= {200, 503} and 200 in answers  # 503: Stripe would deliver it again
    assert shopper.wait_for_final(placed["id"])["status"] == "PAID"
    # After: nothing moves a settled payment.
    assert webhook(stripe_event("payment_intent.payment_failed", intent)).status_code == 200
    assert webhook(stripe_event("payment_intent.canceled", intent)).status_code == 200
    time.sleep(1)
    assert shopper.get(f"/orders/{placed['id']}").json()["status"] == "PAID"
    assert history_types(rpc, placed["id"]).count("PaymentSuccess") == 1


def test_a_replayed_webhook_is_applied_once(shopper, admin, webhook, payments_db):
    product = admin.create_product(admin, stock=3)
    placed = shopper.place_order(product["id"]).json()
    assert shopper.wait_for_final(placed["id"])["status"] == "PAID"
    event = stripe_event("payment_intent.succeeded",
                         {"id": "pi_unknown", "object": "payment_intent", "metadata": {"order_id": placed["id"]}})
    first, again = webhook(event), webhook(event)
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json()["applied"] is True and again.json()["applied"] is False
    assert payments_db("SELECT count(*) FROM stripe_events WHERE event_id = %s", event["id"]) == [(1,)]


def test_a_dispute_is_recorded_once(webhook, payments_db, shop):
    dispute = {"id": f"dp_{uuid.uuid4().hex[:12]}", "object": "dispute", "amount": 1000, "currency": "usd",
               "reason": "fraudulent", "status": "needs_response", "payment_intent": "pi_nobody"}
    event = stripe_event("charge.dispute.created", dispute)
    assert webhook(event).status_code == 200 and webhook(event).status_code == 200
    assert payments_db("SELECT reason, amount_cents FROM disputes WHERE dispute_id = %s",
                       dispute["id"]) == [("fraudulent", 1000)]
    assert "shop_payment_disputes_total 1.0" in payment_metrics(shop).splitlines()


@pytest.mark.parametrize("case", ["unsigned", "wrong secret", "tampered", "stale", "garbage header"])
def test_a_webhook_that_is_not_from_stripe_is_refused(case, shop, api, webhook, payments_db):
    dispute = {"id": f"dp_{uuid.uuid4().hex[:12]}", "object": "dispute", "amount": 1, "currency": "usd",
               "reason": "forged", "status": "needs_response"}
    event = stripe_event("charge.dispute.created", dispute)
    secret = shop.env["STRIPE_WEBHOOK_SECRET"]
    if case == "unsigned":
        response = webhook(event, sign_with=None)
    elif case == "wrong secret":
        response = webhook(event, sign_with="whsec_" + "0" * 48)
    elif case == "tampered":
        header = signature(json.dumps(event).encode(), secret)
        event["data"]["object"]["amount"] = 999_999
        response = webhook(event, header=header)
    elif case == "stale":  # Stripe's tolerance is five minutes
        response = webhook(event, timestamp=int(time.time()) - 301)
    else:
        response = webhook(event, header="t=now,v1=nothing")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert payments_db("SELECT count(*) FROM disputes WHERE dispute_id = %s", dispute["id"]) == [(0,)]


def test_a_webhook_body_that_is_not_an_event_is_a_clear_400(shop, api):
    payload = b"[1, 2, 3]"
    response = api.post("/webhooks/stripe", data=payload, headers={
        "Stripe-Signature": signature(payload, shop.env["STRIPE_WEBHOOK_SECRET"])})
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


# -- refunds ----------------------------------------------------------------------
def paid_order(shopper, admin):
    product = admin.create_product(admin, stock=5)
    placed = shopper.place_order(product["id"]).json()
    assert shopper.wait_for_final(placed["id"])["status"] == "PAID"
    return placed["id"]


def test_a_refund_that_fails_twice_then_succeeds(shopper, admin, rpc, localstripe, stripe_client,
                                                 wait_for_payment):
    order_id = paid_order(shopper, admin)
    intent_id = rpc.payment_service.get_payment(order_id)["intent_id"]
    localstripe.fail_refunds(intent_id, 2)
    rpc.payment_service.refund(order_id, "customer returned the parcel")
    payment = wait_for_payment(order_id, ("REFUNDED",), timeout=40)
    assert payment["status"] == "REFUNDED" and payment["refund_attempts"] == 2
    refunds = stripe_client.v1.refunds.list(params={"payment_intent": intent_id}).data
    assert sorted(refund.status for refund in refunds) == ["failed", "failed", "succeeded"]
    assert wait_for(lambda: history_types(rpc, order_id), lambda types: "PaymentRefunded" in types)


def test_a_refund_that_always_fails_is_parked_and_holds_up_no_other(shopper, admin, rpc, localstripe,
                                                                    stripe_client, wait_for_payment, shop):
    stuck, fine = paid_order(shopper, admin), paid_order(shopper, admin)
    localstripe.fail_refunds(rpc.payment_service.get_payment(stuck)["intent_id"], 99)
    rpc.payment_service.refund(stuck, "wrong size")
    rpc.payment_service.refund(fine, "wrong colour")
    assert wait_for_payment(fine, ("REFUNDED",))["status"] == "REFUNDED"
    parked = wait_for_payment(stuck, ("REFUND_FAILED",), timeout=60)
    assert parked["status"] == "REFUND_FAILED" and parked["refund_attempts"] == 3  # MAX_REFUND_ATTEMPTS here
    assert parked["refund_failure"] == "expired_or_canceled_card"

    def parked_gauge():
        return payment_gauge(shop, 'shop_payments_waiting{status="REFUND_FAILED"}')

    assert wait_for(parked_gauge, lambda value: value >= 1, timeout=40) >= 1  # RefundsStuck fires on this
    localstripe.fail_refunds(parked["intent_id"], 0)
    rpc.payment_service.refund(stuck, "card replaced: operator retries")  # the runbook's fix
    assert wait_for_payment(stuck, ("REFUNDED",))["status"] == "REFUNDED"


# -- money --------------------------------------------------------------------------
def test_a_zero_decimal_currency_is_charged_in_its_own_units(shopper, admin, stripe_client, wait_for_payment):
    product = admin.create_product(admin, stock=2, price="1500", currency="JPY")
    assert product["price"] == "1500"
    placed = shopper.place_order(product["id"]).json()
    assert (placed["total"], placed["currency"]) == ("1500", "JPY")
    assert shopper.wait_for_final(placed["id"])["status"] == "PAID"
    intent = stripe_client.v1.payment_intents.retrieve(wait_for_payment(placed["id"], ("SUCCEEDED",))["intent_id"])
    assert (intent.amount, intent.currency) == (1500, "jpy")


def test_a_total_stripe_cannot_charge_is_refused_before_any_stock_moves(shopper, admin):
    product = admin.create_product(admin, stock=5, price="0.20", currency="GBP")  # Stripe's minimum: 0.30 GBP
    response = shopper.place_order(product["id"])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "amount_out_of_range"
    assert response.json()["error"]["details"] == {"total": "0.20", "currency": "GBP"}
    assert shopper.stock(product["id"]) == 5
    assert shopper.place_order(product["id"], quantity=2).status_code == 202  # 0.40 GBP is fine


@pytest.mark.parametrize("price, currency", [("19.9\n", "USD"), ("15.5", "JPY"), ("10.00", "XTS"), ("1.234", "EUR")])
def test_prices_must_match_the_currency_exactly(admin, price, currency):
    response = admin.post("/products", json={"sku": f"T-{uuid.uuid4().hex[:12]}", "name": "x", "price": price,
                                             "currency": currency, "stock": 1})
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


# -- reconciliation -------------------------------------------------------------------
def test_reconciliation_finds_a_planted_orphan_charge_and_an_operator_refunds_it(rpc, stripe_client, shop,
                                                                                 shopper, admin):
    from shop_common.errors import IllegalPaymentTransition

    started = time.time() - 1
    orphan = stripe_client.v1.payment_intents.create(params={  # money taken outside any order of ours
        "amount": 1234, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True,
        "metadata": {"order_id": f"no-such-order-{uuid.uuid4().hex[:8]}"}})
    assert orphan.status == "succeeded"
    findings = [finding for finding in rpc.payment_service.reconcile(started, 0) if finding["intent_id"] == orphan.id]
    assert [finding["kind"] for finding in findings] == ["orphan_charge"]

    def orphan_gauge():
        return payment_gauge(shop, 'shop_payments_unreconciled{kind="orphan_charge"}')

    assert wait_for(orphan_gauge, lambda value: value >= 1, timeout=50) >= 1  # PaymentsUnreconciled fires

    paid = paid_order(shopper, admin)
    with pytest.raises(IllegalPaymentTransition):  # a charge a payment claims goes through refund(order_id)
        rpc.payment_service.refund_orphan(rpc.payment_service.get_payment(paid)["intent_id"], "mistake")

    assert rpc.payment_service.refund_orphan(orphan.id, "planted by a test")["refunded"] is True
    assert rpc.payment_service.refund_orphan(orphan.id, "twice")["refunded"] is False
    refunds = stripe_client.v1.refunds.list(params={"payment_intent": orphan.id}).data
    assert [(refund.status, refund.amount) for refund in refunds] == [("succeeded", 1234)]
    assert not [finding for finding in rpc.payment_service.reconcile(started, 0) if finding["intent_id"] == orphan.id]
    # No test of the session so far left money taken without an order.
    everything = rpc.payment_service.reconcile(time.time() - 3600, 3)
    assert [finding for finding in everything if finding["kind"] == "orphan_charge"] == []
