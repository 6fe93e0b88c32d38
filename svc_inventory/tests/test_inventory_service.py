"""InventoryService entrypoints with Nameko's worker_factory."""
import uuid

from nameko.testing.services import worker_factory
from sqlalchemy import text

from shop_common import events
from svc_inventory.dependencies import StockStore
from svc_inventory.service import InventoryService


def test_changed_products_are_invalidated_in_the_cache():
    service = worker_factory(InventoryService)
    service.stock.deduct_for_order.return_value = [{"product_id": "p1", "quantity": 3, "stock": 0},
                                                   {"product_id": "p2", "quantity": 1, "stock": 9}]
    event = events.new_event(events.ORDER_CREATED, {"items": [{"product_id": "p2", "quantity": 1},
                                                              {"product_id": "p1", "quantity": 3}]}, order_id="o1")
    service.on_order_created(event)
    service.stock.deduct_for_order.assert_called_once_with(event, [("p1", 3), ("p2", 1)])
    service.cache.invalidate.assert_called_once_with(["p1", "p2"])


def test_nothing_changed_nothing_invalidated():
    service = worker_factory(InventoryService)
    service.stock.restore_for_order.return_value = []
    service.on_payment_failed(events.new_event(events.PAYMENT_FAILED, {}, order_id="o1"))
    service.cache.invalidate.assert_not_called()


def test_payment_failed_restores_the_stock_the_order_took(transactions_for):
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

    order_id = str(uuid.uuid4())
    service.on_order_created(events.new_event(
        events.ORDER_CREATED, {"order_id": order_id, "items": [{"product_id": product, "quantity": 2}]},
        order_id=order_id))
    assert stock_of(store, product) == 3

    failed = events.new_event(events.PAYMENT_FAILED, {"order_id": order_id}, order_id=order_id)
    service.cache.invalidate.reset_mock()
    service.on_payment_failed(failed)
    assert stock_of(store, product) == 5
    service.cache.invalidate.assert_called_once_with([product])

    service.cache.invalidate.reset_mock()
    service.on_payment_failed(failed)
    assert stock_of(store, product) == 5
    service.cache.invalidate.assert_not_called()
