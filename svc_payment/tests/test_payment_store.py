"""PaymentStore on a real PostgreSQL database: one charge per order, refunds in any arrival order."""
import eventlet
import pytest
from sqlalchemy import select, text

from shop_common import events, testing
from svc_payment import schemas
from svc_payment.dependencies import PaymentStore
from svc_payment.exceptions import IllegalPaymentTransition, PaymentBusy
from svc_payment.models import PaymentStatus, outbox


@pytest.fixture
def store(transactions_for):
    return PaymentStore(transactions_for("payments"))


def order_created(order_id=None, total=1234):
    return testing.event(events.ORDER_CREATED, order_id, total_cents=total)


def order_cancelled(order_id):
    return testing.event(events.ORDER_COMPLETED, order_id, status="CANCELLED", reason="sold_out")


def emitted(store, order_id):
    with store.transactions.begin() as session:
        return [row.event_type for row in session.execute(
            select(outbox).where(outbox.c.message_key == order_id).order_by(outbox.c.id))]


SUCCEEDED = {"succeeded": True, "intent_id": "pi_1"}
DECLINED = {"succeeded": False, "intent_id": "pi_2", "failure_code": "card_declined", "failure_message": "no"}


def test_charge_once_even_when_redelivered(store):
    event = order_created()
    payment = store.begin_charge(event, schemas.charge_request(event))
    assert payment["status"] == PaymentStatus.PROCESSING and payment["amount_cents"] == 1234
    assert store.finish_charge(event, SUCCEEDED) is None
    assert store.begin_charge(event, schemas.charge_request(event)) is None  # redelivery: nothing to charge
    assert store.get_payment(event["order_id"])["status"] == PaymentStatus.SUCCEEDED
    assert emitted(store, event["order_id"]) == ["PaymentSuccess"]


def test_crash_after_intent_resumes_the_same_intent(store):
    event = order_created()
    payment = store.begin_charge(event, schemas.charge_request(event))
    store.record_intent(payment["order_id"], "pi_resume")
    resumed = store.begin_charge(event, schemas.charge_request(event))  # redelivered before finishing
    assert resumed["status"] == PaymentStatus.PROCESSING and resumed["intent_id"] == "pi_resume"


def test_declined_payment_emits_payment_failed(store):
    event = order_created()
    store.begin_charge(event, schemas.charge_request(event))
    store.finish_charge(event, DECLINED)
    payment = store.get_payment(event["order_id"])
    assert payment["status"] == PaymentStatus.FAILED and payment["failure_code"] == "card_declined"
    assert emitted(store, event["order_id"]) == ["PaymentFailed"]


def test_an_order_ended_before_its_charge_voids_it(store):
    event = order_created()
    assert store.release_for_order(order_cancelled(event["order_id"])) is None
    assert store.begin_charge(event, schemas.charge_request(event)) is None
    assert store.get_payment(event["order_id"])["status"] == PaymentStatus.VOIDED
    assert emitted(store, event["order_id"]) == ["PaymentVoided"]


def test_an_order_ended_unpaid_after_its_charge_is_refunded(store):
    event = order_created()
    store.begin_charge(event, schemas.charge_request(event))
    store.finish_charge(event, SUCCEEDED)
    to_refund = store.release_for_order(order_cancelled(event["order_id"]))
    assert to_refund["status"] == PaymentStatus.REFUND_PENDING and to_refund["intent_id"] == "pi_1"
    store.finish_refund(event["order_id"], "re_1")
    payment = store.get_payment(event["order_id"])
    assert payment["status"] == PaymentStatus.REFUNDED and payment["refund_id"] == "re_1"
    assert emitted(store, event["order_id"]) == ["PaymentSuccess", "PaymentRefunded"]


def test_a_paid_order_is_never_refunded(store):
    event = order_created()
    store.begin_charge(event, schemas.charge_request(event))
    store.finish_charge(event, SUCCEEDED)
    paid = testing.event(events.ORDER_COMPLETED, event["order_id"], status="PAID")
    assert store.release_for_order(paid) is None
    assert store.get_payment(event["order_id"])["status"] == PaymentStatus.SUCCEEDED


def test_an_order_ended_during_its_charge_refunds_when_the_charge_lands(store):
    event = order_created()
    store.begin_charge(event, schemas.charge_request(event))
    assert store.release_for_order(order_cancelled(event["order_id"])) is None
    to_refund = store.finish_charge(event, SUCCEEDED)
    assert to_refund["status"] == PaymentStatus.REFUND_PENDING


def test_a_total_stripe_cannot_charge_fails_the_payment_instead_of_stalling(store):
    event = order_created(total=0)
    assert store.begin_charge(event, schemas.charge_request(event)) is None
    payment = store.get_payment(event["order_id"])
    assert payment["status"] == PaymentStatus.FAILED and payment["failure_code"] == "amount_out_of_range"
    assert emitted(store, event["order_id"]) == ["PaymentFailed"]
    assert store.begin_charge(event, schemas.charge_request(event)) is None  # again: nothing new
    assert emitted(store, event["order_id"]) == ["PaymentFailed"]


def test_only_one_worker_at_a_time_holds_an_order(store):
    event = order_created()
    holding, release = eventlet.event.Event(), eventlet.event.Event()

    def first():
        with store.exclusive(event["order_id"]):
            holding.send()
            release.wait()

    worker = eventlet.spawn(first)
    holding.wait()
    with pytest.raises(PaymentBusy):
        with store.exclusive(event["order_id"]):
            pass
    release.send()
    worker.wait()
    with store.exclusive(event["order_id"]):  # free again once the holder is done
        pass


def test_payment_transitions_are_guarded():
    with pytest.raises(IllegalPaymentTransition):
        PaymentStatus.check(PaymentStatus.FAILED, PaymentStatus.SUCCEEDED)
    assert PaymentStatus.check(PaymentStatus.SUCCEEDED, PaymentStatus.REFUND_PENDING) == "REFUND_PENDING"


def test_a_repeated_order_created_sends_the_outcome_again_without_charging(store):
    event = order_created()
    store.begin_charge(event, schemas.charge_request(event))
    store.finish_charge(event, SUCCEEDED)
    with store.transactions.begin() as session:
        session.execute(text("UPDATE outbox SET published_at = now() WHERE message_key = :id"),
                        {"id": event["order_id"]})
    assert store.begin_charge(event, schemas.charge_request(event)) is None
    with store.transactions.begin() as session:
        again = session.execute(text("SELECT event_type FROM outbox WHERE message_key = :id "
                                     "AND published_at IS NULL"), {"id": event["order_id"]}).scalars().all()
    assert again == ["PaymentSuccess"]
