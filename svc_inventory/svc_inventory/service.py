from nameko.rpc import rpc

from shop_common import events
from shop_common.cache import ProductCacheProvider
from shop_common.kafka import kafka_event
from shop_common.outbox import OutboxRelay
from shop_common.service import ServiceBase
from svc_inventory import models, schemas
from svc_inventory.dependencies import Stock


class InventoryService(ServiceBase):
    name = "inventory_service"
    package = "svc-inventory"

    stock = Stock()
    cache = ProductCacheProvider()
    relay = OutboxRelay(models.outbox)

    @kafka_event(events.ORDERS_TOPIC, events.ORDER_CREATED)
    def on_order_created(self, event):
        changed = self.stock.deduct_for_order(event, schemas.order_lines(event))
        if changed:
            self.cache.invalidate(changed)

    @kafka_event(events.PAYMENTS_TOPIC, events.PAYMENT_FAILED)
    def on_payment_failed(self, event):
        changed = self.stock.restore_for_order(event)
        if changed:
            self.cache.invalidate(changed)

    @rpc
    def get_reservation(self, order_id):
        """Operator call: what Inventory decided for an order's stock."""
        return self.stock.get_reservation(order_id)

    @rpc
    def outbox_backlog(self):
        return self.stock.outbox_backlog()
