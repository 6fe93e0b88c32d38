"""OrderStore on a real PostgreSQL database (migrated by the root conftest)."""
import time
import uuid

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.engine.default import CACHE_HIT
from sqlalchemy import select, text

from shop_common import testing
from shop_common.errors import (
    AmountOutOfRange, IdempotencyKeyReused, IllegalOrderTransition, OrderNotFound, PaymentMismatch, RequestExpired,
)
from shop_common.messaging import events
from svc_order import schemas
from svc_order.models import notifications, outbox
from svc_order.store import OrderStore

ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "1", "country": "US"}


@pytest.fixture
def store(transactions_for):
    return OrderStore(transactions_for("orders"))


LINES = [{"product_id": "p1", "name": "One", "quantity": 2, "unit_price_cents": 250},
         {"product_id": "p2", "name": "Two", "quantity": 1, "unit_price_cents": 1000}]


def place(store, user_id=None, key=None, lines=LINES):
    fingerprint = schemas.request_fingerprint([{"product_id": line["product_id"], "quantity": line["quantity"]}
                                               for line in lines], "pm_card_visa")
    return store.place(user_id or str(uuid.uuid4()), lines, "USD", "pm_card_visa", ADDRESS, key,
                       fingerprint=fingerprint)


def event(event_type, order_id, **payload):
    if event_type == events.PAYMENT_SUCCESS:
        payload = {"amount": "15.00", **payload}  # the total of every order place() makes
    return testing.event(event_type, order_id, **payload)


def outbox_types(store, order_id):
    with store.transactions.begin() as session:
        return [row.event_type for row in session.execute(
            select(outbox).where(outbox.c.message_key == order_id).order_by(outbox.c.id))]


def test_order_and_its_event_are_written_together(store):
    order, version, created = place(store)
    assert created and version == 1
    assert order["status"] == "PENDING" and order["total"] == "15.00"
    assert outbox_types(store, order["id"]) == ["OrderCreated"]
    with store.transactions.begin() as session:
        envelope = session.execute(select(outbox.c.envelope).where(outbox.c.message_key == order["id"])).scalar_one()
    assert envelope["event_version"] == 2
    assert envelope["payload"]["total"] == {"amount_minor": 1500, "currency": "USD"}
    assert envelope["payload"]["items"][0] == {"product_id": "p1", "quantity": 2,
                                               "unit_price": {"amount_minor": 250, "currency": "USD"}}


def test_placing_is_one_statement_that_writes_the_order_its_items_history_and_event(store):
    """No BEGIN or COMMIT round trips: the whole placement is one statement, atomic on its own, and
    SQLAlchemy compiles it once (a statement it cannot cache is built and compiled for every order)."""
    sent = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(context.cache_hit)

    place(store, lines=LINES[:1])  # compiled here, if it was not already
    sqlalchemy_event.listen(store.transactions.engine, "before_cursor_execute", record)
    try:
        order, _, created = place(store)
    finally:
        sqlalchemy_event.remove(store.transactions.engine, "before_cursor_execute", record)
    assert created and sent == [CACHE_HIT]
    assert [item["product_id"] for item in order["items"]] == ["p1", "p2"]
    assert [entry["event_type"] for entry in store.history(order["id"])] == ["OrderCreated"]
    assert outbox_types(store, order["id"]) == ["OrderCreated"]


def test_the_views_placing_and_applying_answer_are_the_ones_read_back(store):
    """place() builds its answer from what it wrote (RETURNING), apply() from the order and items it
    locked in one query: the same view as get(), items in product order whatever order they came in,
    for an event applied and for one delivered again."""
    order, version, _ = place(store, lines=list(reversed(LINES)))
    assert [item["product_id"] for item in order["items"]] == ["p1", "p2"]
    assert (order, version) == store.get(order["id"])
    stock = event(events.STOCK_UPDATED, order["id"])
    for _ in range(2):
        applied, version, _ = store.apply(stock)
        assert applied["items"] == order["items"] and (applied, version) == store.get(order["id"])


def test_same_idempotency_key_gives_the_same_order(store):
    user_id = str(uuid.uuid4())
    first, _, created_first = place(store, user_id, "k1")
    second, _, created_second = place(store, user_id, "k1")
    assert created_first and not created_second
    assert second["id"] == first["id"]
    assert len(store.list_for_user(user_id)) == 1


def test_a_key_reused_for_another_request_is_refused(store):
    user_id = str(uuid.uuid4())
    first, _, _ = place(store, user_id, "k1")
    assert place(store, user_id, "k1", lines=list(reversed(LINES)))[0]["id"] == first["id"]  # same request
    more = [dict(LINES[0], quantity=3), LINES[1]]
    with pytest.raises(IdempotencyKeyReused) as refused:
        place(store, user_id, "k1", lines=more)  # the insert's unique key catches it, as in a race
    assert refused.value.details["order_id"] == first["id"]
    with pytest.raises(IdempotencyKeyReused):
        store.find_by_idempotency_key(user_id, "k1", "another-fingerprint")
    assert len(store.list_for_user(user_id)) == 1


def test_paid_after_both_facts_in_either_order(store):
    for first, second in ((events.STOCK_UPDATED, events.PAYMENT_SUCCESS),
                          (events.PAYMENT_SUCCESS, events.STOCK_UPDATED)):
        order, _, _ = place(store)
        view, version, final = store.apply(event(first, order["id"]))
        assert view["status"] == "PENDING" and version == 2 and final is None
        view, version, final = store.apply(event(second, order["id"]))
        assert view["status"] == "PAID" and version == 3 and final == "PAID"
        assert outbox_types(store, order["id"]) == ["OrderCreated", "OrderCompleted"]


def test_a_payment_counts_only_for_exactly_the_order_s_total(store):
    order, _, _ = place(store)
    for wrong in ({"amount": "0.01"}, {"amount": "15.00", "currency": "EUR"}, {"amount": "15.0"}):
        with pytest.raises(PaymentMismatch) as refused:
            store.apply(event(events.PAYMENT_SUCCESS, order["id"], **wrong))
        assert refused.value.details["total"] == "15.00 USD"
    assert store.get(order["id"])[0]["status"] == "PENDING"  # nothing applied, not even the inbox claim
    store.apply(event(events.STOCK_UPDATED, order["id"]))
    assert store.apply(event(events.PAYMENT_SUCCESS, order["id"]))[0]["status"] == "PAID"


def test_a_replayed_event_is_applied_once(store):
    order, _, _ = place(store)
    failed = event(events.PAYMENT_FAILED, order["id"])
    assert store.apply(failed)[0]["status"] == "PAYMENT_FAILED"
    view, version, reached = store.apply(failed)
    assert view["status"] == "PAYMENT_FAILED" and version == 2 and reached is None  # as it is, for the cache
    history = store.history(order["id"])
    assert [entry["event_type"] for entry in history] == ["OrderCreated", "PaymentFailed"]


def test_late_fact_after_final_status_changes_nothing_and_notifies_once(store):
    order, _, _ = place(store)
    store.apply(event(events.PAYMENT_FAILED, order["id"]))
    view, _, final = store.apply(event(events.STOCK_UPDATED, order["id"]))
    assert view["status"] == "PAYMENT_FAILED" and final is None
    with store.transactions.begin() as session:
        kinds = session.execute(select(notifications.c.kind).where(notifications.c.order_id == order["id"])).all()
    assert [kind for (kind,) in kinds] == ["payment_failed"]


def test_orders_are_private_to_their_user(store):
    order, _, _ = place(store)
    with pytest.raises(OrderNotFound):
        store.get(order["id"], user_id=str(uuid.uuid4()))
    assert store.get(order["id"])[0]["id"] == order["id"]


def test_event_for_unknown_order_is_a_domain_error_and_claims_nothing(store):
    unknown = event(events.PAYMENT_SUCCESS, str(uuid.uuid4()))
    with pytest.raises(OrderNotFound):
        store.apply(unknown)
    with store.transactions.begin() as session:
        claims = session.execute(text("SELECT count(*) FROM inbox WHERE event_id = :id"),
                                 {"id": unknown["event_id"]}).scalar()
    assert claims == 0  # rolled back with the error: a replay from the dead letters is applied


def age(store, order_id, seconds_ago, created_too=False):
    """As if the order's events had been published, and it had last changed, that long ago."""
    with store.transactions.begin() as session:
        session.execute(text("UPDATE outbox SET published_at = now() - make_interval(secs => :s) "
                             "WHERE message_key = :id"), {"s": seconds_ago, "id": order_id})
        session.execute(text("UPDATE orders SET updated_at = now() - make_interval(secs => :s), "
                             "next_redrive_at = NULL WHERE id = :id"), {"s": seconds_ago, "id": order_id})
        if created_too:
            session.execute(text("UPDATE orders SET created_at = now() - make_interval(secs => :s) WHERE id = :id"),
                            {"s": seconds_ago, "id": order_id})


def row_of(store, order_id):
    with store.transactions.begin() as session:
        return session.execute(text("SELECT * FROM orders WHERE id = :id"), {"id": order_id}).one()


def test_stuck_pending_order_is_redriven_with_the_same_event(store):
    order, _, _ = place(store)
    age(store, order["id"], 120)
    assert order["id"] in store.redrive_stuck(60)
    assert testing.unpublished(store.transactions, order["id"]) == ["OrderCreated"]
    assert store.history(order["id"])[-1]["event_type"] == "OrderCreatedRedriven"
    assert order["id"] not in store.redrive_stuck(60)  # not again until it has been published and aged


def test_recent_or_settled_orders_are_not_redriven(store):
    recent, _, _ = place(store)
    age(store, recent["id"], 5)
    paid, _, _ = place(store)
    store.apply(event(events.STOCK_UPDATED, paid["id"]))
    store.apply(event(events.PAYMENT_SUCCESS, paid["id"]))
    age(store, paid["id"], 120)
    redriven = store.redrive_stuck(60)
    assert recent["id"] not in redriven and paid["id"] not in redriven


def test_each_redrive_waits_longer_and_the_least_recently_redriven_go_first(store):
    first, _, _ = place(store)
    age(store, first["id"], 120)
    assert first["id"] in store.redrive_stuck(60)
    row = row_of(store, first["id"])
    assert row.redrive_count == 1
    wait = (row.next_redrive_at - row.updated_at).total_seconds()
    age(store, first["id"], 120)  # published again, and quiet again
    with store.transactions.begin() as session:
        session.execute(text("UPDATE orders SET redrive_count = 1, next_redrive_at = now() WHERE id = :id"),
                        {"id": first["id"]})
    second, _, _ = place(store)
    age(store, second["id"], 120)
    assert store.redrive_stuck(60, limit=1) == [second["id"]]  # never redriven: ahead of the one that was
    assert store.redrive_stuck(60, limit=1) == [first["id"]]
    row = row_of(store, first["id"])
    assert row.redrive_count == 2
    assert (row.next_redrive_at - row.updated_at).total_seconds() > wait  # 60 s, then 120 s


def test_a_final_order_waiting_for_its_compensations_gets_its_outcome_redriven(store):
    order, _, _ = place(store)
    store.apply(event(events.STOCK_UPDATED, order["id"]))
    store.apply(event(events.PAYMENT_FAILED, order["id"]))  # final; the stock is still out
    assert row_of(store, order["id"]).settled_at is None
    age(store, order["id"], 120)
    assert order["id"] in store.redrive_stuck(60)
    assert testing.unpublished(store.transactions, order["id"]) == ["OrderCompleted"]
    store.apply(event(events.STOCK_RESTORED, order["id"]))
    assert row_of(store, order["id"]).settled_at is not None
    age(store, order["id"], 120)
    assert order["id"] not in store.redrive_stuck(60)


def test_an_order_past_its_deadline_is_cancelled_with_its_compensations(store):
    order, _, _ = place(store)
    store.apply(event(events.STOCK_UPDATED, order["id"]))
    age(store, order["id"], 2000, created_too=True)
    young, _, _ = place(store)
    cancelled = store.cancel_overdue(1800)
    assert [view["id"] for view, _ in cancelled] == [order["id"]]
    view = store.get(order["id"])[0]
    assert view["status"] == "CANCELLED" and "in time" in view["message"]
    assert store.get(young["id"])[0]["status"] == "PENDING"
    assert outbox_types(store, order["id"]) == ["OrderCreated", "OrderCompleted"]
    with store.transactions.begin() as session:
        completed = session.execute(select(outbox.c.envelope).where(
            outbox.c.message_key == order["id"], outbox.c.event_type == "OrderCompleted")).scalar_one()
    assert completed["payload"]["status"] == "CANCELLED" and completed["payload"]["reason"] == "deadline"
    assert store.cancel_overdue(1800) == []  # once
    # A payment that lands afterwards changes nothing but the record; Payment refunds it (OrderCompleted).
    assert store.apply(event(events.PAYMENT_SUCCESS, order["id"]))[0]["status"] == "CANCELLED"


def test_a_total_the_provider_cannot_charge_is_refused_before_anything_is_written(store):
    user_id = str(uuid.uuid4())
    free = [{"product_id": "p0", "name": "Free sample", "quantity": 1, "unit_price_cents": 0}]
    with pytest.raises(AmountOutOfRange):
        store.place(user_id, free, "USD", "pm_card_visa", ADDRESS, None)
    assert store.list_for_user(user_id) == []


def test_nothing_is_committed_once_the_callers_deadline_has_passed(store):
    user_id = str(uuid.uuid4())
    lines = [{"product_id": "p1", "name": "One", "quantity": 1, "unit_price_cents": 250}]
    with pytest.raises(RequestExpired):
        store.place(user_id, lines, "USD", "pm_card_visa", ADDRESS, None, deadline=time.time() - 1)
    assert store.list_for_user(user_id) == []
    assert store.place(user_id, lines, "USD", "pm_card_visa", ADDRESS, None, deadline=time.time() + 10)[2]


def test_an_operator_cancels_a_pending_order_and_its_compensations_follow(store):
    order, _, _ = place(store)
    store.apply(event(events.STOCK_UPDATED, order["id"]))
    view, _ = store.cancel(order["id"], "operator", "priced 0.00 by mistake", "alice")
    assert view["status"] == "CANCELLED" and "our team" in view["message"]
    assert outbox_types(store, order["id"]) == ["OrderCreated", "OrderCompleted"]
    with store.transactions.begin() as session:
        completed = session.execute(select(outbox.c.envelope).where(
            outbox.c.message_key == order["id"], outbox.c.event_type == "OrderCompleted")).scalar_one()
    assert completed["payload"] == {**completed["payload"], "status": "CANCELLED", "reason": "operator"}
    assert store.history(order["id"])[-1]["detail"] == {"reason": "priced 0.00 by mistake", "by": "alice"}
    with pytest.raises(IllegalOrderTransition):  # a final order stays as it is
        store.cancel(order["id"], "operator", "again")
    with pytest.raises(OrderNotFound):
        store.cancel(str(uuid.uuid4()), "operator", "nobody's")
    assert outbox_types(store, order["id"]) == ["OrderCreated", "OrderCompleted"]


def test_operators_find_orders_by_user_status_and_age(store):
    user_id = str(uuid.uuid4())
    old, _, _ = place(store, user_id)
    age(store, old["id"], 600, created_too=True)
    new, _, _ = place(store, user_id)
    store.cancel(new["id"], "operator", "test")
    place(store)  # another user's
    assert [o["id"] for o in store.find([user_id])] == [new["id"], old["id"]]
    assert [o["id"] for o in store.find([user_id], status="PENDING")] == [old["id"]]
    assert [o["id"] for o in store.find([user_id], older_than_seconds=300)] == [old["id"]]
    assert [o["id"] for o in store.find([user_id], limit=1)] == [new["id"]]
