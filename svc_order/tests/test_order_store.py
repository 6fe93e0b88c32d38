"""OrderStore on a real PostgreSQL database (migrated by the root conftest)."""
import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from shop_common import events
from svc_order import events as order_events
from svc_order.dependencies import OrderStore
from svc_order.exceptions import OrderNotFound
from svc_order.models import notifications, outbox

ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "1", "country": "US"}


@pytest.fixture
def store(transactions_for):
    return OrderStore(transactions_for("orders"))


def place(store, user_id=None, key=None):
    lines = [{"product_id": "p1", "name": "One", "quantity": 2, "unit_price_cents": 250},
             {"product_id": "p2", "name": "Two", "quantity": 1, "unit_price_cents": 1000}]
    return store.place(user_id or str(uuid.uuid4()), lines, "USD", "pm_card_visa", ADDRESS, key)


def event(event_type, order_id):
    return events.new_event(event_type, {"order_id": order_id}, order_id=order_id)


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
    assert envelope["payload"]["total_cents"] == 1500
    assert envelope["payload"]["items"][0] == {"product_id": "p1", "quantity": 2, "unit_price_cents": 250}


def test_same_idempotency_key_gives_the_same_order(store):
    user_id = str(uuid.uuid4())
    first, _, created_first = place(store, user_id, "k1")
    second, _, created_second = place(store, user_id, "k1")
    assert created_first and not created_second
    assert second["id"] == first["id"]
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


def test_a_replayed_event_is_applied_once(store):
    order, _, _ = place(store)
    failed = event(events.PAYMENT_FAILED, order["id"])
    assert store.apply(failed)[0]["status"] == "PAYMENT_FAILED"
    assert store.apply(failed) is None
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


def test_event_for_unknown_order_is_a_domain_error(store):
    with pytest.raises(OrderNotFound):
        store.apply(event(events.PAYMENT_SUCCESS, str(uuid.uuid4())))


def mark_published(store, order_id, seconds_ago):
    with store.transactions.begin() as session:
        session.execute(text("UPDATE outbox SET published_at = now() - make_interval(secs => :s) "
                             "WHERE message_key = :id"), {"s": seconds_ago, "id": order_id})
        session.execute(text("UPDATE orders SET updated_at = now() - make_interval(secs => :s) WHERE id = :id"),
                        {"s": seconds_ago, "id": order_id})


def unpublished(store, order_id):
    with store.transactions.begin() as session:
        return [row.event_type for row in session.execute(
            select(outbox).where(outbox.c.message_key == order_id, outbox.c.published_at.is_(None)))]


def test_stuck_pending_order_is_redriven_with_the_same_event(store):
    order, _, _ = place(store)
    mark_published(store, order["id"], 120)
    assert order["id"] in store.redrive_stuck(60)
    assert unpublished(store, order["id"]) == ["OrderCreated"]
    assert store.history(order["id"])[-1]["event_type"] == "OrderCreatedRedriven"
    assert order["id"] not in store.redrive_stuck(60)  # not again until it has been published and aged


def test_recent_or_settled_orders_are_not_redriven(store):
    recent, _, _ = place(store)
    mark_published(store, recent["id"], 5)
    settled, _, _ = place(store)
    store.apply(event(events.PAYMENT_FAILED, settled["id"]))
    mark_published(store, settled["id"], 120)
    redriven = store.redrive_stuck(60)
    assert recent["id"] not in redriven and settled["id"] not in redriven


def test_a_failed_outbox_write_leaves_no_order_behind(store, monkeypatch):
    """The order, its lines, its history and its OrderCreated row commit together or not at all.

    The outbox insert is made to fail for real: the event reuses the id of an event that is
    already in the outbox, so PostgreSQL's unique constraint refuses it."""
    taken, _, _ = place(store)
    with store.transactions.begin() as session:
        taken_event_id = session.execute(
            select(outbox.c.event_id).where(outbox.c.message_key == taken["id"])).scalar_one()
    real_order_created = order_events.order_created

    def clashing_order_created(*args, **kwargs):
        return dict(real_order_created(*args, **kwargs), event_id=taken_event_id)

    monkeypatch.setattr(order_events, "order_created", clashing_order_created)
    user_id = str(uuid.uuid4())
    with pytest.raises(IntegrityError):
        place(store, user_id)
    assert store.list_for_user(user_id) == []
    with store.transactions.begin() as session:
        leftovers = session.execute(text(
            "SELECT (SELECT count(*) FROM orders WHERE user_id = :u) + "
            "(SELECT count(*) FROM order_items i LEFT JOIN orders o ON o.id = i.order_id WHERE o.id IS NULL) + "
            "(SELECT count(*) FROM order_history h LEFT JOIN orders o ON o.id = h.order_id WHERE o.id IS NULL)"),
            {"u": user_id}).scalar_one()
    assert leftovers == 0
