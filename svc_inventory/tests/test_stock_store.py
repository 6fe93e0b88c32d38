"""StockStore on a real PostgreSQL database: atomic deductions, restores, either arrival order."""
import uuid
from concurrent.futures import ThreadPoolExecutor

import eventlet
import pytest
from sqlalchemy import select, text

from shop_common import testing
from shop_common.errors import IllegalReservationTransition, InsufficientStock, ProductNotFound
from shop_common.messaging import events
from svc_inventory.models import ReservationState, outbox
from svc_inventory.store import StockStore


@pytest.fixture
def store(transactions_for):
    return StockStore(transactions_for("products"))


def new_product(store, stock):
    product_id = str(uuid.uuid4())
    with store.transactions.begin() as session:
        session.execute(text("INSERT INTO products (id, sku, name, price_cents, stock) "
                             "VALUES (:id, :sku, 'Test', 100, :stock)"),
                        {"id": product_id, "sku": product_id[:20], "stock": stock})
    return product_id


def stock_of(store, product_id):
    with store.transactions.begin() as session:
        return session.execute(text("SELECT stock FROM products WHERE id = :id"), {"id": product_id}).scalar_one()


def order_created(lines, order_id=None):
    return testing.order_created(lines, order_id)


def order_ended(order_id, status="PAYMENT_FAILED"):
    return testing.event(events.ORDER_COMPLETED, order_id, status=status)


def deduct(store, event):
    return store.deduct_for_order(event, events.payload_of(event).lines())


def emitted(store, order_id):
    with store.transactions.begin() as session:
        return [row.event_type for row in session.execute(
            select(outbox).where(outbox.c.message_key == order_id).order_by(outbox.c.id))]


def test_deduction_takes_stock_and_emits_stock_updated(store):
    product = new_product(store, 5)
    event = order_created([(product, 2)])
    assert deduct(store, event) == [{"product_id": product, "quantity": 2, "stock": 3}]
    assert stock_of(store, product) == 3
    assert store.get_reservation(event["order_id"])["state"] == ReservationState.DEDUCTED
    assert emitted(store, event["order_id"]) == ["StockUpdated"]


def test_redelivered_order_created_deducts_once(store):
    product = new_product(store, 5)
    event = order_created([(product, 2)])
    deduct(store, event)
    assert deduct(store, event) == []
    assert stock_of(store, product) == 3
    assert emitted(store, event["order_id"]) == ["StockUpdated"]


def test_shortage_on_one_line_deducts_nothing(store):
    plenty, scarce = new_product(store, 10), new_product(store, 1)
    event = order_created([(plenty, 3), (scarce, 2)])
    assert deduct(store, event) == []
    assert stock_of(store, plenty) == 10 and stock_of(store, scarce) == 1
    assert store.get_reservation(event["order_id"])["state"] == ReservationState.UNAVAILABLE
    assert emitted(store, event["order_id"]) == ["StockUnavailable"]


def test_a_lone_line_sold_out_deducts_nothing_and_is_unavailable(store):
    scarce = new_product(store, 1)
    event = order_created([(scarce, 2)])
    assert deduct(store, event) == []
    assert stock_of(store, scarce) == 1
    assert store.get_reservation(event["order_id"])["state"] == ReservationState.UNAVAILABLE
    assert emitted(store, event["order_id"]) == ["StockUnavailable"]


def test_an_order_ended_unpaid_gets_its_stock_back(store):
    product = new_product(store, 4)
    event = order_created([(product, 3)])
    deduct(store, event)
    assert store.release_for_order(order_ended(event["order_id"])) == [
        {"product_id": product, "quantity": 3, "stock": 4}]
    assert stock_of(store, product) == 4
    assert store.get_reservation(event["order_id"])["state"] == ReservationState.RESTORED
    assert emitted(store, event["order_id"]) == ["StockUpdated", "StockRestored"]


def test_a_paid_order_keeps_its_stock(store):
    product = new_product(store, 4)
    event = order_created([(product, 3)])
    deduct(store, event)
    assert store.release_for_order(order_ended(event["order_id"], status="PAID")) == []
    assert stock_of(store, product) == 1
    assert emitted(store, event["order_id"]) == ["StockUpdated"]


def test_an_order_ended_before_its_order_created_never_takes_stock(store):
    product = new_product(store, 4)
    event = order_created([(product, 3)])
    assert store.release_for_order(order_ended(event["order_id"], status="CANCELLED")) == []
    assert deduct(store, event) == []  # e.g. replayed from the dead letters afterwards
    assert stock_of(store, product) == 4
    assert store.get_reservation(event["order_id"])["state"] == ReservationState.VOIDED
    assert emitted(store, event["order_id"]) == ["StockRestored"]


def test_a_repeated_order_completed_sends_every_answer_again(store):
    product = new_product(store, 4)
    event = order_created([(product, 3)])
    deduct(store, event)
    ended = order_ended(event["order_id"])
    store.release_for_order(ended)
    testing.mark_published(store.transactions, event["order_id"])
    assert store.release_for_order(ended) == []
    assert stock_of(store, product) == 4
    assert testing.unpublished(store.transactions, event["order_id"]) == ["StockUpdated", "StockRestored"]


def test_a_repeated_paid_order_completed_sends_the_deduction_again_and_keeps_the_stock(store):
    product = new_product(store, 4)
    event = order_created([(product, 3)])
    deduct(store, event)
    paid = order_ended(event["order_id"], status="PAID")
    assert store.release_for_order(paid) == []
    testing.mark_published(store.transactions, event["order_id"])
    assert store.release_for_order(paid) == []
    assert stock_of(store, product) == 1
    assert testing.unpublished(store.transactions, event["order_id"]) == ["StockUpdated"]


def test_concurrent_orders_never_drive_stock_below_zero(store):
    product = new_product(store, 5)
    orders = [order_created([(product, 1)]) for _ in range(20)]
    pool = eventlet.GreenPool(20)
    results = list(pool.imap(lambda event: deduct(store, event), orders))
    assert sum(1 for changed in results if changed) == 5
    assert stock_of(store, product) == 0
    states = [store.get_reservation(event["order_id"])["state"] for event in orders]
    assert states.count(ReservationState.DEDUCTED) == 5
    assert states.count(ReservationState.UNAVAILABLE) == 15


def test_reservation_transitions_are_guarded():
    assert ReservationState.check("DEDUCTING", "DEDUCTED") == "DEDUCTED"
    with pytest.raises(IllegalReservationTransition):
        ReservationState.check("RESTORED", "DEDUCTED")


def test_order_lines_are_sorted():
    event = order_created([("b", 1), ("a", 2)])
    assert events.payload_of(event).lines() == [("a", 2), ("b", 1)]


def test_a_repeated_order_created_sends_the_decision_again(store):
    product = new_product(store, 5)
    event = order_created([(product, 1)])
    deduct(store, event)
    with store.transactions.begin() as session:
        session.execute(text("UPDATE outbox SET published_at = now() WHERE message_key = :id"),
                        {"id": event["order_id"]})
    assert deduct(store, event) == []
    assert stock_of(store, product) == 4
    with store.transactions.begin() as session:
        again = session.execute(text("SELECT event_type FROM outbox WHERE message_key = :id "
                                     "AND published_at IS NULL"), {"id": event["order_id"]}).scalars().all()
    assert again == ["StockUpdated"]


def test_an_adjustment_is_a_delta_with_a_ledger_entry_and_an_event(store):
    product_id = new_product(store, 3)
    entry = store.adjust(product_id, 5, "delivery from the supplier", "alice")
    assert (entry["delta"], entry["stock_after"], entry["by"]) == (5, 8, "alice")
    store.adjust(product_id, -2, "two broken in the warehouse", "bob")
    assert stock_of(store, product_id) == 6
    assert [(each["delta"], each["stock_after"], each["reason"]) for each in store.history(product_id)] == [
        (-2, 6, "two broken in the warehouse"), (5, 8, "delivery from the supplier")]
    with store.transactions.begin() as session:
        sent = session.execute(select(outbox.c.envelope).where(outbox.c.message_key == product_id)
                               .order_by(outbox.c.id)).scalars().all()
    assert [(event["event_type"], event["payload"]["delta"], event["payload"]["by"]) for event in sent] == [
        ("StockAdjusted", 5, "alice"), ("StockAdjusted", -2, "bob")]


def test_an_adjustment_never_takes_stock_below_zero_and_names_what_is_missing(store):
    product_id = new_product(store, 2)
    with pytest.raises(InsufficientStock) as refused:
        store.adjust(product_id, -3, "recount", "alice")
    assert refused.value.details == {"product_id": product_id, "stock": 2, "delta": -3}
    assert stock_of(store, product_id) == 2 and store.history(product_id) == []
    with pytest.raises(ProductNotFound):
        store.adjust(str(uuid.uuid4()), 1, "recount", "alice")


def test_adjustments_racing_with_orders_lose_no_update(store):
    """Forty orders of one unit and forty deliveries of one unit at once: the stock ends where it started."""
    product_id = new_product(store, 40)
    with ThreadPoolExecutor(16) as pool:  # threads: each call really overlaps the others in PostgreSQL
        done = [pool.submit(deduct, store, order_created([(product_id, 1)])) for _ in range(40)]
        done += [pool.submit(store.adjust, product_id, 1, "delivery", "alice") for _ in range(40)]
    for each in done:
        each.result()
    assert stock_of(store, product_id) == 40
    assert len(store.history(product_id)) == 40


def test_a_stock_level_is_set_as_the_delta_it_makes_and_a_same_level_records_nothing(store):
    product_id = new_product(store, 5)
    entry = store.set_level(product_id, 12, "recount", "alice")
    assert (entry["delta"], entry["stock_after"], entry["by"]) == (7, 12, "alice")
    assert store.set_level(product_id, 12, "recount", "alice") is None
    assert stock_of(store, product_id) == 12 and len(store.history(product_id)) == 1
    assert emitted(store, product_id) == ["StockAdjusted"]
    with pytest.raises(ProductNotFound):
        store.set_level(str(uuid.uuid4()), 1, "recount", "alice")


def test_levels_set_while_orders_deduct_are_each_recorded_with_the_delta_they_really_made(store):
    """Deductions land before or after each set, never in between: the stock at the end is the
    start, plus every recorded delta, minus every deduction."""
    product_id = new_product(store, 100)
    with ThreadPoolExecutor(16) as pool:
        deducted = [pool.submit(deduct, store, order_created([(product_id, 1)])) for _ in range(30)]
        levels = [pool.submit(store.set_level, product_id, level, "recount", "alice") for level in (90, 80, 95, 85)]
    units_deducted = sum(line["quantity"] for each in deducted for line in each.result())
    assert units_deducted == 30
    # A set that finds the stock at its number already records nothing (None): deductions
    # can bring 90 down to 85 just before "set 85" takes the lock.
    entries = store.history(product_id)
    assert len(entries) == sum(each.result() is not None for each in levels)
    recorded = sum(entry["delta"] for entry in entries)
    assert stock_of(store, product_id) == 100 + recorded - units_deducted
