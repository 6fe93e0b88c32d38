"""InventoryService entrypoints with Nameko's worker_factory."""
import uuid

from nameko.testing.services import worker_factory
from sqlalchemy import text

from shop_common import testing
from shop_common.messaging import events
from svc_inventory.service import InventoryService
from svc_inventory.store import StockStore


def test_changed_products_are_invalidated_in_the_cache():
    service = worker_factory(InventoryService)
    service.stock.deduct_for_order.return_value = [{"product_id": "p1", "quantity": 3, "stock": 0},
                                                   {"product_id": "p2", "quantity": 1, "stock": 9}]
    event = testing.order_created([("p2", 1), ("p1", 3)], "o1")
    service.on_order_created(event)
    service.stock.deduct_for_order.assert_called_once_with(event, [("p1", 3), ("p2", 1)])
    service.cache.invalidate.assert_called_once_with(["p1", "p2"])


def test_nothing_changed_nothing_invalidated():
    service = worker_factory(InventoryService)
    service.stock.release_for_order.return_value = []
    service.on_order_completed(testing.event(events.ORDER_COMPLETED, "o1"))
    service.cache.invalidate.assert_not_called()


def test_a_stock_move_stays_done_when_the_cache_is_away():
    service = worker_factory(InventoryService)
    service.stock.deduct_for_order.return_value = [{"product_id": "p1", "quantity": 1, "stock": 0}]
    service.cache.invalidate.side_effect = ConnectionError("redis is away")
    service.on_order_created(testing.order_created([("p1", 1)], "o1"))  # no exception: no retry of a done move


def test_an_order_ended_unpaid_gets_its_stock_back(transactions_for):
    """The handler with the real store on PostgreSQL: the order's deduction is given back,
    the restored products are invalidated in the cache, and a redelivery restores nothing more."""
    store = StockStore(transactions_for("products"))
    service = worker_factory(InventoryService, stock=store)
    product = str(uuid.uuid4())
    with store.transactions.begin() as session:
        session.execute(text("INSERT INTO products (id, sku, name, price_cents, stock) "
                             "VALUES (:id, :sku, 'Test', 100, 5)"), {"id": product, "sku": product[:20]})

    def stock_of(store, product_id):
        with store.transactions.begin() as session:
            return session.execute(text("SELECT stock FROM products WHERE id = :id"), {"id": product_id}).scalar_one()

    created = testing.order_created([(product, 2)])
    service.on_order_created(created)
    assert stock_of(store, product) == 3

    failed = testing.event(events.ORDER_COMPLETED, created["order_id"], status="PAYMENT_FAILED")
    service.cache.invalidate.reset_mock()
    service.on_order_completed(failed)
    assert stock_of(store, product) == 5
    service.cache.invalidate.assert_called_once_with([product])

    service.cache.invalidate.reset_mock()
    service.on_order_completed(failed)
    assert stock_of(store, product) == 5
    service.cache.invalidate.assert_not_called()
