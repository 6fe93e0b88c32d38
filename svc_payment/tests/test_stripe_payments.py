"""StripePayments through the real stripe SDK against a real localstripe process."""
import time
import uuid

import eventlet
import pytest
import requests
import stripe
from nameko import config
from urllib3.connectionpool import HTTPConnectionPool

from svc_payment.stripe_client import PaymentProvider, StripePayments


@pytest.fixture(scope="module")
def payments(localstripe_url):
    return StripePayments(stripe.StripeClient("sk_test_unit", base_addresses={"api": localstripe_url}))


def payment(method="pm_card_visa", intent_id=None, attempts=1, **values):
    return {"order_id": str(uuid.uuid4()), "amount_cents": 2500, "currency": "USD", "payment_method": method,
            "intent_id": intent_id, "charge_attempts": attempts, "refund_id": None, "refund_attempts": 0, **values}


def no_record(intent_id):
    pass


def intents_of(payments, order_id):
    query = f"metadata['order_id']:'{order_id}'"
    return payments.client.v1.payment_intents.search(params={"query": query}).data


def test_successful_charge_records_the_intent_first(payments):
    recorded = []
    intent = payments.charge(payment(), record_intent=recorded.append)
    assert intent["status"] == "succeeded" and intent["intent_id"].startswith("pi_")
    assert recorded == [intent["intent_id"]]


def test_declined_card_is_a_failure_not_an_exception(payments):
    intent = payments.charge(payment("pm_card_chargeCustomerFail"), record_intent=no_record)
    assert intent["status"] == "requires_payment_method" and intent["failure_code"] == "card_declined"


def test_unknown_payment_method_fails_cleanly(payments):
    intent = payments.charge(payment("pm_does_not_exist"), record_intent=no_record)
    assert intent["status"] == "requires_payment_method" and intent["failure_code"]


def test_resuming_a_confirmed_intent_does_not_charge_again(payments):
    first = payments.charge(payment(), record_intent=no_record)
    again = payments.charge(payment(intent_id=first["intent_id"]), record_intent=no_record)
    assert (again["status"], again["intent_id"]) == ("succeeded", first["intent_id"])
    charges = payments.client.v1.charges.list(params={"limit": 100}).data
    assert len([charge for charge in charges if charge.payment_intent == first["intent_id"]]) == 1


def test_a_crash_between_create_and_record_finds_the_first_intent(payments):
    lost = payment()
    # The first attempt created an intent and died before recording it.
    created = payments.client.v1.payment_intents.create(params={
        "amount": 2500, "currency": "usd", "payment_method": "pm_card_visa",
        "metadata": {"order_id": lost["order_id"]}})
    recorded = []
    intent = payments.charge(dict(lost, charge_attempts=2), record_intent=recorded.append)
    assert recorded == [created.id] and intent["intent_id"] == created.id and intent["status"] == "succeeded"
    assert [found.id for found in intents_of(payments, lost["order_id"])] == [created.id]


def test_three_d_secure_waits_for_the_shopper(payments, localstripe_url):
    intent = payments.charge(payment("pm_card_authenticationRequired"), record_intent=no_record)
    assert intent["status"] == "requires_action" and intent["client_secret"].startswith(intent["intent_id"])
    assert intent["next_action"]["type"] == "use_stripe_sdk"
    response = requests.post(f"{localstripe_url}/v1/payment_intents/{intent['intent_id']}/_authenticate",
                             data={"client_secret": intent["client_secret"], "success": "true"},
                             auth=("sk_test_unit", ""), timeout=5)
    assert response.status_code == 200
    assert payments.intent(intent["intent_id"])["status"] == "succeeded"


def test_an_abandoned_authentication_is_cancelled(payments):
    intent = payments.charge(payment("pm_card_authenticationRequired"), record_intent=no_record)
    cancelled = payments.cancel(intent["intent_id"])
    assert cancelled["status"] == "canceled" and cancelled["failure_code"] == "authentication_abandoned"


def test_cancelling_an_intent_that_succeeded_meanwhile_reports_the_success(payments):
    intent = payments.charge(payment(), record_intent=no_record)
    assert payments.cancel(intent["intent_id"])["status"] == "succeeded"


def test_a_bank_debit_is_processing_until_it_settles(payments):
    method = payments.client.v1.payment_methods.create(params={
        "type": "sepa_debit", "sepa_debit": {"iban": "DE89370400440532013000"}})
    intent = payments.charge(payment(method.id, currency="EUR"), record_intent=no_record)
    assert intent["status"] == "processing"
    deadline = time.monotonic() + 5
    while payments.intent(intent["intent_id"])["status"] == "processing" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert payments.intent(intent["intent_id"])["status"] == "succeeded"


def test_refund_is_issued_once(payments):
    charged = payment()
    charged["intent_id"] = payments.charge(charged, record_intent=no_record)["intent_id"]
    first = payments.refund(charged)
    second = payments.refund(charged)
    assert first == second and first["status"] == "succeeded" and first["refund_id"].startswith("re_")


def test_a_failed_refund_is_reported_and_a_new_one_made_next_time(payments, localstripe_url):
    charged = payment()
    charged["intent_id"] = payments.charge(charged, record_intent=no_record)["intent_id"]
    requests.post(f"{localstripe_url}/_config/refund_failures",
                  data={"payment_intent": charged["intent_id"], "count": 1}, timeout=5)
    first = payments.refund(charged)
    assert first["status"] == "pending"
    time.sleep(0.5)
    failed = payments.refund(dict(charged, refund_id=first["refund_id"]))
    assert failed == {"refund_id": first["refund_id"], "status": "failed",
                      "failure_reason": "expired_or_canceled_card"}
    second = payments.refund(dict(charged, refund_attempts=1))  # the store forgot the failed one
    assert second["status"] == "succeeded" and second["refund_id"] != first["refund_id"]


def test_a_charge_shows_its_own_refunds_only(payments, localstripe_url):
    """ops/localstripe_server.py lists each type from its own index rather than the whole store:
    a charge's refunds, totals and the refund list by intent still come out as Stripe shows them."""
    refunded, kept = payment(), payment()
    for each in (refunded, kept):
        each["intent_id"] = payments.charge(each, record_intent=no_record)["intent_id"]
    refund_id = payments.refund(refunded)["refund_id"]

    def charge_of(each):
        intent = requests.get(f"{localstripe_url}/v1/payment_intents/{each['intent_id']}",
                              auth=("sk_test_unit", ""), timeout=5).json()
        charge = intent["latest_charge"]
        return charge if isinstance(charge, dict) else requests.get(
            f"{localstripe_url}/v1/charges/{charge}", auth=("sk_test_unit", ""), timeout=5).json()

    charge = charge_of(refunded)
    assert (charge["refunded"], charge["amount_refunded"]) == (True, 2500)
    assert [refund["id"] for refund in charge["refunds"]["data"]] == [refund_id]
    untouched = charge_of(kept)
    assert (untouched["refunded"], untouched["amount_refunded"], untouched["refunds"]["data"]) == (False, 0, [])
    listed = payments.client.v1.refunds.list(params={"payment_intent": refunded["intent_id"]}).data
    assert [refund.id for refund in listed] == [refund_id]


def test_workers_share_their_connections_to_stripe(localstripe_url, monkeypatch):
    """Each Nameko worker is a green thread of its own, and the SDK keeps a session per thread: every
    charge opened a connection (a TLS handshake with Stripe) and left it to the garbage collector."""
    opened = []
    new_connection = HTTPConnectionPool._new_conn
    monkeypatch.setattr(HTTPConnectionPool, "_new_conn", lambda pool: opened.append(pool.port) or new_connection(pool))
    with config.patch({"STRIPE": {"api_key": "sk_test_unit", "api_base": localstripe_url}, "max_workers": 4}):
        provider = PaymentProvider()
        provider.setup()
    for _ in range(8):  # one worker after another, each on a green thread of its own
        charged = eventlet.spawn(provider.get_dependency(None).charge, payment(), no_record).wait()
        assert charged["status"] == "succeeded"
    assert len(opened) == 1


def provider_for(localstripe_url):
    with config.patch({"STRIPE": {"api_key": "sk_test_unit", "api_base": localstripe_url, "timeout_seconds": 2}}):
        provider = PaymentProvider()
        provider.setup()
    return provider.get_dependency(None)


def test_the_proxy_the_environment_names_for_stripe_is_used_and_read_once(localstripe_url, monkeypatch):
    """HTTP(S)_PROXY and NO_PROXY apply as requests reads them, once when the service starts (requests read
    the whole environment on every call: docs/performance.md, item 29)."""
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("http_proxy", raising=False)
    through_the_proxy = provider_for(localstripe_url)
    with pytest.raises(Exception):
        through_the_proxy.charge(payment(), no_record)

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    direct = provider_for(localstripe_url)
    assert direct.charge(payment(), no_record)["status"] == "succeeded"

    monkeypatch.delenv("NO_PROXY")  # read at start only: the running service keeps going direct
    assert direct.charge(payment(), no_record)["status"] == "succeeded"
