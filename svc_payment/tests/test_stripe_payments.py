"""StripePayments through the real stripe SDK against a real localstripe process."""
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import stripe

from svc_payment.dependencies import StripePayments

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "ops"))

from stack import free_port, wait_for_port  # noqa: E402


@pytest.fixture(scope="module")
def payments():
    port = free_port()
    process = subprocess.Popen([sys.executable, str(ROOT / "ops" / "localstripe_server.py"),
                                "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, 20, "localstripe")
    client = stripe.StripeClient("sk_test_unit", base_addresses={"api": f"http://127.0.0.1:{port}"})
    yield StripePayments(client)
    process.terminate()
    process.wait(10)


def payment(method="pm_card_visa", intent_id=None):
    return {"order_id": str(uuid.uuid4()), "amount_cents": 2500, "currency": "USD",
            "payment_method": method, "intent_id": intent_id}


def test_successful_charge_records_the_intent_first(payments):
    recorded = []
    outcome = payments.charge(payment(), record_intent=recorded.append)
    assert outcome["succeeded"] and outcome["intent_id"].startswith("pi_")
    assert recorded == [outcome["intent_id"]]


def test_declined_card_is_a_failure_not_an_exception(payments):
    outcome = payments.charge(payment("pm_card_chargeCustomerFail"), record_intent=lambda intent_id: None)
    assert outcome["succeeded"] is False and outcome["failure_code"] == "card_declined"


def test_unknown_payment_method_fails_cleanly(payments):
    outcome = payments.charge(payment("pm_does_not_exist"), record_intent=lambda intent_id: None)
    assert outcome["succeeded"] is False and outcome["failure_code"]


def test_resuming_a_confirmed_intent_does_not_charge_again(payments):
    first = payments.charge(payment(), record_intent=lambda intent_id: None)
    again = payments.charge(payment(intent_id=first["intent_id"]), record_intent=lambda intent_id: None)
    assert again == {"succeeded": True, "intent_id": first["intent_id"]}
    charges = payments.client.v1.charges.list(params={"limit": 100}).data
    assert len([charge for charge in charges if charge.payment_intent == first["intent_id"]]) == 1


def test_refund_is_issued_once(payments):
    charged = payment()
    charged["intent_id"] = payments.charge(charged, record_intent=lambda intent_id: None)["intent_id"]
    first = payments.refund(charged)
    second = payments.refund(charged)
    assert first == second and first.startswith("re_")
