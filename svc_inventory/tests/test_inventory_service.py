"""InventoryService entrypoints with Nameko's worker_factory."""
from nameko.testing.services import worker_factory

from shop_common import events
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
