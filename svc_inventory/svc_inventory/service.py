import logging

from shop_common import audit
from shop_common.messaging import events
from shop_common.messaging.kafka import kafka_event
from shop_common.messaging.outbox import OutboxRelay
from shop_common.rpc import rpc
from shop_common.service import ServiceBase
from shop_common.storage.cache import ProductCacheProvider
from shop_common.telemetry.metrics import STOCK_UNITS
from svc_inventory import models, schemas
from svc_inventory.service_name import NAME
from svc_inventory.store import Stock

log = logging.getLogger(__name__)


class InventoryService(ServiceBase):
    name = NAME
    package = "svc-inventory"

    stock = Stock()
    cache = ProductCacheProvider()
    relay = OutboxRelay(models.outbox, models.inbox)

    @kafka_event(events.ORDERS_TOPIC, events.ORDER_CREATED)
    def on_order_created(self, event):
        self._moved("deducted", self.stock.deduct_for_order(event, events.payload_of(event).lines()))

    @kafka_event(events.ORDERS_TOPIC, events.ORDER_COMPLETED)
    def on_order_completed(self, event):
        self._moved("restored", self.stock.release_for_order(event))

    @rpc
    def get_reservation(self, order_id):
        """Operator call: what Inventory decided for an order's stock."""
        return self.stock.get_reservation(order_id)

    @rpc
    def adjust_stock(self, product_id, delta, reason):
        """Operator call: add units (or remove, with a negative delta) atomically, never below zero;
        recorded in the product's stock ledger with who and why."""
        product_id, delta, reason = schemas.stock_adjustment(product_id, delta, reason)
        entry = self.stock.adjust(product_id, delta, reason, self.operator)
        log.warning("audit: %s adjusted stock of %s by %+d to %d: %s", self.operator, product_id, delta,
                    entry["stock_after"], entry["reason"])
        self._moved("adjusted", [{"product_id": product_id, "quantity": abs(delta)}])
        return entry

    @rpc
    def set_stock(self, product_id, stock, reason):
        """Operator call: set the stock to a number (what the admin's PATCH /products/<id> does), recorded
        in the ledger as the delta it makes; None if it was that number already."""
        product_id, stock, reason = schemas.stock_level(product_id, stock, reason)
        entry = self.stock.set_level(product_id, stock, reason, self.operator)
        if entry is not None:
            log.warning("audit: %s set stock of %s to %d (%+d): %s", self.operator, product_id, stock,
                        entry["delta"], entry["reason"])
            self._moved("adjusted", [{"product_id": product_id, "quantity": abs(entry["delta"])}])
        return entry

    @rpc
    def stock_history(self, product_id, limit=100):
        """Operator call: the product's stock adjustments by hand, newest first (who, why, how many, after)."""
        return self.stock.history(product_id, audit.history_limit(limit))

    @rpc
    def outbox_backlog(self):
        """Operator call: unpublished events and the age of the oldest."""
        return self.relay.backlog()

    def _moved(self, change, lines):
        """After a committed stock move: readers must not see the old stock."""
        if not lines:
            return
        STOCK_UNITS.labels(change).inc(sum(line["quantity"] for line in lines))
        try:
            self.cache.invalidate([line["product_id"] for line in lines])
        except Exception as exc:  # committed already; failing now would only retry a move that is done
            log.warning("product cache not invalidated after a stock move: %r", exc)
