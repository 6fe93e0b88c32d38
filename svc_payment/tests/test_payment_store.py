"""PaymentStore on a real PostgreSQL database: one charge per order, refunds in any arrival order."""
from datetime import datetime

import eventlet
import pytest
from sqlalchemy import select, text

from shop_common import testing
from shop_common.errors import IllegalPaymentTransition, PaymentBusy
from shop_common.messaging import events
from svc_payment import schemas
from svc_payment.models import PaymentStatus, outbox
from svc_payment.store import PaymentStore, Timing


@pytest.fixture
def store(transactions_for):
    return PaymentStore(transactions_for("payments"), Timing(refund_retry_seconds=0, max_refund_attempts=3))


def order_created(order_id=None, total=1234):
    return testing.order_created(order_id=order_id, unit_price_cents=total)


def order_cancelled(order_id):
    return testing.event(events.ORDER_COMPLETED, order_id, status="CANCELLED", reason="sold_out")


def emitted(store, order_id):
    with store.transactions.begin() as session:
        return [row.event_type for row in session.execute(
            select(outbox).where(outbox.c.message_key == order_id).order_by(outbox.c.id))]


def intent(status, intent_id="pi_1", **values):
    return {"intent_id": intent_id, "status": status, "client_secret": f"{intent_id}_secret_x",
            "next_action": None, "failure_code": None, "failure_message": None, **values}


SUCCEEDED = intent("succeeded")
DECLINED = intent("requires_payment_method", failure_code="card_declined", failure_message="no")
NEEDS_3DS = intent("requires_action", next_action={"type": "use_stripe_sdk", "redirect_url": None})


def charge(store, event, outcome):
    """Begin the charge for ``event`` and record Stripe's answer, as on_order_created does."""
    payment = store.begin_charge(event, schemas.charge_request(event))
    store.record_intent(payment["order_id"], outcome["intent_id"])
    return store.apply_intent(event["order_id"], outcome, event=event)


def claims(store, event_id):
    with store.transactions.begin() as session:
        return session.execute(text("SELECT count(*) FROM inbox WHERE event_id = :id"), {"id": event_id}).scalar()


def test_charge_once_even_when_redelivered(store):
    event = order_created()
    payment = store.begin_charge(event, schemas.charge_request(event))
    assert payment["status"] == PaymentStatus.PROCESSING and payment["amount_cents"] == 1234
    assert store.apply_intent(event["order_id"], SUCCEEDED, event=event) is None
    assert claims(store, event["event_id"]) == 1  # claimed with the outcome
    assert store.begin_charge(event, schemas.charge_request(event)) is None  # redelivery: nothing to charge
    assert store.get_payment(event["order_id"])["status"] == PaymentStatus.SUCCEEDED
    assert emitted(store, event["order_id"]) == ["PaymentSuccess"]


def test_crash_after_intent_resumes_the_same_intent(store):
    event = order_created()
    payment = store.begin_charge(event, schemas.charge_request(event))
    store.record_intent(payment["order_id"], "pi_resume")
    resumed = store.begin_charge(event, schemas.charge_request(event))  # redelivered before finishing
    assert resumed["status"] == PaymentStatus.PROCESSING and resumed["intent_id"] == "pi_resume"


def test_a_processing_payment_names_its_holder_and_lease_until_it_leaves_processing(transactions_for, caplog):
    first = PaymentStore(transactions_for("payments"), Timing(charge_lease_seconds=120), owner="host-a:1")
    second = PaymentStore(transactions_for("payments"), owner="host-b:2")
    event = order_created()
    with first.exclusive(event["order_id"]):
        payment = first.begin_charge(event, schemas.charge_request(event))
    assert payment["charging_by"] == "host-a:1"
    lease = datetime.fromisoformat(payment["charging_until"]) - datetime.fromisoformat(payment["updated_at"])
    assert 119 <= lease.total_seconds() <= 121
    # host-a died mid-charge: its advisory lock went with its connection, its lease has not run out yet
    with second.exclusive(event["order_id"], wait_seconds=1), caplog.at_level("WARNING"):
        resumed = second.begin_charge(event, schemas.charge_request(event))
    assert resumed["charging_by"] == "host-b:2" and resumed["charge_attempts"] == 2
    assert "took over the charge of host-a:1" in caplog.text
    second.record_intent(event["order_id"], "pi_1")
    second.apply_intent(event["order_id"], SUCCEEDED, event=event)
    done = second.get_payment(event["order_id"])
    assert done["status"] == PaymentStatus.SUCCEEDED and done["charging_by"] is None and done["charging_until"] is None


def test_declined_payment_emits_payment_failed(store):
    event = order_created()
    charge(store, event, DECLINED)
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
    charge(store, event, SUCCEEDED)
    follow_up = store.release_for_order(order_cancelled(event["order_id"]))
    assert follow_up.action == "refund" and follow_up.payment["status"] == PaymentStatus.REFUND_PENDING
    store.record_refund(event["order_id"], {"refund_id": "re_1", "status": "succeeded"})
    payment = store.get_payment(event["order_id"])
    assert payment["status"] == PaymentStatus.REFUNDED and payment["refund_id"] == "re_1"
    assert emitted(store, event["order_id"]) == ["PaymentSuccess", "PaymentRefunded"]


def test_a_paid_order_is_never_refunded(store):
    event = order_created()
    charge(store, event, SUCCEEDED)
    paid = testing.event(events.ORDER_COMPLETED, event["order_id"], status="PAID")
    assert store.release_for_order(paid) is None
    assert store.get_payment(event["order_id"])["status"] == PaymentStatus.SUCCEEDED


def test_a_paid_order_completed_is_recorded_once_and_sends_the_outcome_again_when_repeated(store):
    event = order_created()
    charge(store, event, SUCCEEDED)
    paid = testing.event(events.ORDER_COMPLETED, event["order_id"], status="PAID")
    assert store.release_for_order(paid) is None
    assert store.get_payment(event["order_id"])["order_status"] == "PAID"
    testing.mark_published(store.transactions, event["order_id"])
    assert claims(store, paid["event_id"]) == 1
    assert store.release_for_order(paid) is None  # the repeat: what Payment said goes out again
    assert testing.unpublished(store.transactions, event["order_id"]) == ["PaymentSuccess"]


def test_an_order_ended_during_its_charge_refunds_when_the_charge_lands(store):
    event = order_created()
    payment = store.begin_charge(event, schemas.charge_request(event))
    assert store.release_for_order(order_cancelled(event["order_id"])) is None
    store.record_intent(payment["order_id"], "pi_1")
    follow_up = store.apply_intent(event["order_id"], SUCCEEDED, event=event)
    assert follow_up.action == "refund" and follow_up.payment["status"] == PaymentStatus.REFUND_PENDING


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
    charge(store, event, SUCCEEDED)
    testing.mark_published(store.transactions, event["order_id"])
    assert store.begin_charge(event, schemas.charge_request(event)) is None
    assert testing.unpublished(store.transactions, event["order_id"]) == ["PaymentSuccess"]


def test_three_d_secure_waits_then_succeeds(store):
    event = order_created()
    assert charge(store, event, NEEDS_3DS) is None
    payment = store.get_payment(event["order_id"])
    assert payment["status"] == PaymentStatus.REQUIRES_ACTION and payment["action_expires_at"]
    assert store.begin_charge(event, schemas.charge_request(event)) is None  # a redelivery charges nothing
    assert store.apply_intent(event["order_id"], SUCCEEDED) is None  # the shopper authenticated (webhook)
    assert store.get_payment(event["order_id"])["status"] == PaymentStatus.SUCCEEDED
    assert emitted(store, event["order_id"]) == ["PaymentActionRequired", "PaymentSuccess"]


def test_a_late_snapshot_never_moves_a_payment_backwards(store):
    event = order_created()
    charge(store, event, SUCCEEDED)
    for stale in (NEEDS_3DS, intent("processing"), DECLINED):
        assert store.apply_intent(event["order_id"], stale) is None
    assert store.get_payment(event["order_id"])["status"] == PaymentStatus.SUCCEEDED
    assert emitted(store, event["order_id"]) == ["PaymentSuccess"]


def test_a_processing_payment_settles_later(store):
    event = order_created()
    charge(store, event, intent("processing"))
    assert store.get_payment(event["order_id"])["status"] == PaymentStatus.SETTLING
    assert emitted(store, event["order_id"]) == []  # the order stays PENDING
    store.apply_intent(event["order_id"], DECLINED)
    assert store.get_payment(event["order_id"])["status"] == PaymentStatus.FAILED
    assert emitted(store, event["order_id"]) == ["PaymentFailed"]


def test_a_charge_landing_after_the_payment_failed_is_refunded(store):
    event = order_created()
    charge(store, event, intent("canceled", failure_code="authentication_abandoned"))
    follow_up = store.apply_intent(event["order_id"], SUCCEEDED)
    assert follow_up.action == "refund" and follow_up.payment["status"] == PaymentStatus.REFUND_PENDING


def test_an_order_ended_while_waiting_for_3ds_cancels_the_intent_and_voids(store):
    event = order_created()
    charge(store, event, NEEDS_3DS)
    follow_up = store.release_for_order(order_cancelled(event["order_id"]))
    assert follow_up.action == "cancel_intent" and follow_up.payment["intent_id"] == "pi_1"
    assert store.apply_intent(event["order_id"], intent("canceled")) is None
    assert store.get_payment(event["order_id"])["status"] == PaymentStatus.VOIDED
    assert emitted(store, event["order_id"]) == ["PaymentActionRequired", "PaymentVoided"]


def refund_pending(store):
    event = order_created()
    charge(store, event, SUCCEEDED)
    store.release_for_order(order_cancelled(event["order_id"]))
    return event["order_id"]


def test_a_refund_that_fails_twice_then_succeeds(store):
    order_id = refund_pending(store)
    for attempt in (1, 2):
        store.record_refund(order_id, {"refund_id": f"re_{attempt}", "status": "failed", "failure_reason": "x"})
        payment = store.get_payment(order_id)
        assert payment["status"] == PaymentStatus.REFUND_PENDING and payment["refund_attempts"] == attempt
        assert payment["refund_id"] is None  # the next attempt makes a new refund
    store.record_refund(order_id, {"refund_id": "re_3", "status": "pending"})
    assert store.get_payment(order_id)["refund_id"] == "re_3"
    store.record_refund(order_id, {"refund_id": "re_3", "status": "succeeded"})
    assert store.get_payment(order_id)["status"] == PaymentStatus.REFUNDED
    assert emitted(store, order_id)[-1] == "PaymentRefunded"


def test_a_refund_that_always_fails_is_parked_and_an_operator_can_retry_it(store):
    order_id = refund_pending(store)
    for attempt in range(3):
        store.record_refund(order_id, {"refund_id": f"re_{attempt}", "status": "failed", "failure_reason": "lost"})
    payment = store.get_payment(order_id)
    assert payment["status"] == PaymentStatus.REFUND_FAILED and payment["next_check_at"] is None
    assert order_id not in [due for due, _ in store.claim_due()]
    follow_up = store.request_refund(order_id, "card replaced, customer asked again", "alice")
    assert follow_up.payment["status"] == PaymentStatus.REFUND_PENDING and follow_up.payment["refund_attempts"] == 0
    store.record_refund(order_id, {"refund_id": "re_ok", "status": "succeeded"})
    with store.transactions.begin() as session:
        refunded = session.execute(select(outbox.c.envelope).where(
            outbox.c.message_key == order_id, outbox.c.event_type == "PaymentRefunded")).scalar_one()
    assert (refunded["payload"]["reason"], refunded["payload"]["requested_by"]) == (
        "card replaced, customer asked again", "alice")  # the order's history shows who and why


def test_due_payments_are_claimed_once_in_a_stable_order(store):
    due = sorted(refund_pending(store) for _ in range(3))
    with store.transactions.begin() as session:
        session.execute(text("UPDATE payments SET next_check_at = now() - interval '1 second' "
                             "WHERE order_id = ANY(:ids)"), {"ids": due})
    first = [order_id for order_id, _ in store.claim_due() if order_id in due]
    assert first == due
    assert [order_id for order_id, _ in store.claim_due() if order_id in due] == []  # leased


def test_only_a_succeeded_charge_can_be_refunded_by_an_operator(store):
    event = order_created()
    charge(store, event, DECLINED)
    with pytest.raises(IllegalPaymentTransition):
        store.request_refund(event["order_id"], "please", "alice")


def test_workers_holding_every_lock_still_get_their_transactions(unit_databases):
    """The locks have a pool of their own: with one shared pool, a worker holding its only
    connection as a lock would wait for a transaction forever."""
    from nameko import config

    from shop_common.errors import DatabaseUnavailable
    from shop_common.storage.db import Transactions, make_engine
    from svc_payment.store import Payments

    url = unit_databases["payments"]
    store = PaymentStore(Transactions(make_engine(url, pool_size=1, pool_timeout=2)),
                         locks=make_engine(url, pool_size=1, pool_timeout=2, isolation_level="AUTOCOMMIT"))
    event = order_created()
    with store.exclusive(event["order_id"]):
        charge(store, event, intent("succeeded"))
    assert store.get_payment(event["order_id"])["status"] == PaymentStatus.SUCCEEDED
    shared = make_engine(url, pool_size=1, pool_timeout=1)
    one_pool = PaymentStore(Transactions(shared), locks=shared)
    other = order_created()
    with pytest.raises(DatabaseUnavailable), one_pool.exclusive(other["order_id"]):
        charge(one_pool, other, intent("succeeded"))  # waits for its own lock's connection, then gives up
    provider = Payments()  # the service's provider gives its stores a pool for locks
    with config.patch({"DATABASE_URL": url}):
        provider.setup()
    try:
        assert provider.get_dependency(None).locks is provider.locks and provider.locks is not provider.engine
    finally:
        provider.stop()


def test_one_reconciliation_per_interval_whichever_instance_asks_and_its_findings_for_every_instance(
        transactions_for):
    instances = [PaymentStore(transactions_for("payments")) for _ in range(2)]
    with instances[0].transactions.begin() as session:
        session.execute(text("DELETE FROM reconciliation_runs"))
    assert instances[0].last_reconciliation() is None  # before the first run: the gauges say zero
    claims = []
    pool = eventlet.GreenPool()
    for store in instances * 3:  # both instances' timers, three ticks each, at once
        pool.spawn(lambda store=store: claims.append(store.claim_reconciliation(3600)))
    pool.waitall()
    won = [claim for claim in claims if claim is not None]
    assert len(won) == 1, claims
    assert instances[1].last_reconciliation() is None  # started, not finished
    instances[0].finish_reconciliation(won[0], {"orphan_charge": 1, "amount_mismatch": 0})
    assert instances[1].last_reconciliation() == {"orphan_charge": 1, "amount_mismatch": 0}
    assert instances[1].claim_reconciliation(3600) is None
    later = instances[1].claim_reconciliation(0)  # the interval has passed
    assert later is not None and later != won[0]
    assert instances[0].last_reconciliation() == {"orphan_charge": 1, "amount_mismatch": 0}  # until it finishes
    instances[1].finish_reconciliation(later, {"orphan_charge": 0})
    assert instances[0].last_reconciliation() == {"orphan_charge": 0}


def test_the_gauges_count_the_payments_waiting_for_someone_and_no_others(store):
    before = store.counts(PaymentStatus.WATCHED)
    waiting, paid = order_created(), order_created()
    charge(store, waiting, NEEDS_3DS)
    charge(store, paid, SUCCEEDED)
    after = store.counts(PaymentStatus.WATCHED)
    assert set(after) <= set(PaymentStatus.WATCHED)
    assert after[PaymentStatus.REQUIRES_ACTION] == before.get(PaymentStatus.REQUIRES_ACTION, 0) + 1
    with store.transactions.begin() as session:  # an index of those few serves the count (a test table is small
        session.execute(text("SET LOCAL enable_seqscan = off"))  # enough for a scan: ask for the index's plan)
        plan = "\n".join(session.execute(text(
            "EXPLAIN SELECT status, count(*) FROM payments WHERE status IN "
            "('REQUIRES_ACTION', 'SETTLING', 'REFUND_PENDING', 'REFUND_FAILED') GROUP BY status")).scalars())
    assert "ix_payments_watched_status" in plan, plan
