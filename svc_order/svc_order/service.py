import contextvars
import logging
import os

import eventlet
from nameko.timer import timer

from shop_common import audit
from shop_common.errors import UserNotFound
from shop_common.messaging import events
from shop_common.messaging.kafka import kafka_event
from shop_common.messaging.outbox import OutboxRelay
from shop_common.rpc import rpc
from shop_common.service import ServiceBase
from shop_common.storage.cache import OrderCacheProvider
from shop_common.telemetry.metrics import (
    ORDERS_COMPLETED, ORDERS_PENDING, ORDERS_PENDING_OLDEST_AGE, ORDERS_PLACED, ORDERS_REDRIVEN,
)
from svc_order import models, schemas
from svc_order.clients import CustomersRpc, ProductCatalogRpc
from svc_order.service_name import NAME
from svc_order.store import Orders

log = logging.getLogger(__name__)

# An unsettled order without a change for this long has its last event published again.
REDRIVE_AFTER_SECONDS = int(os.environ.get("SHOP_REDRIVE_AFTER_SECONDS", "60"))
REDRIVE_INTERVAL_SECONDS = float(os.environ.get("SHOP_REDRIVE_INTERVAL_SECONDS", "30"))
# An order still PENDING this long after it was placed is cancelled, with its compensations.
ORDER_DEADLINE_SECONDS = int(os.environ.get("SHOP_ORDER_DEADLINE_SECONDS", "1800"))


class OrderService(ServiceBase):
    name = NAME
    package = "svc-order"

    orders = Orders()
    cache = OrderCacheProvider()
    catalog = ProductCatalogRpc()
    customers = CustomersRpc()
    relay = OutboxRelay(models.outbox, models.inbox)

    @rpc
    def place_order(self, user_id, body, idempotency_key=None):
        """Check availability, then store the order with its OrderCreated event.

        Returns {"order", "created"}; created is False when the idempotency
        key had already placed this order.
        """
        lines, payment_method = schemas.order_request(body)
        key = schemas.idempotency_key(idempotency_key)
        fingerprint = schemas.request_fingerprint(lines, payment_method)
        if key:
            existing = self.orders.find_by_idempotency_key(user_id, key, fingerprint)
            if existing:
                return {"order": existing[0], "created": False}
        # The two lookups are independent AMQP round trips: run them side by side.
        # The copied context keeps the user lookup in this worker's trace.
        address_lookup = eventlet.spawn(contextvars.copy_context().run, self.customers.shipping_address, user_id)
        priced, currency = self.catalog.price_lines(lines)
        address = address_lookup.wait()
        order, version, created = self.orders.place(user_id, priced, currency, payment_method, address, key,
                                                    deadline=self.caller_deadline, fingerprint=fingerprint)
        # Committed: from here on nothing may fail the call, or the shopper would retry an order that exists
        # (the cache write cannot: it is queued until the reply has gone).
        self._cache(order, version)
        if created:
            ORDERS_PLACED.inc()
        return {"order": order, "created": created}

    @rpc
    def get_order(self, order_id, user_id=None):
        order, version = self.orders.get(order_id, user_id)
        self._cache(order, version)
        return order

    @rpc
    def list_orders(self, user_id):
        return self.orders.list_for_user(user_id)

    @rpc
    def list_notifications(self, user_id):
        return self.orders.notifications_for(user_id)

    @rpc
    def get_order_with_history(self, order_id):
        """Operator call: the order and every event applied to it, oldest first."""
        order, _ = self.orders.get(order_id)
        return {"order": order, "history": self.orders.history(order_id)}

    @rpc
    def stuck_orders(self, older_than_seconds=300):
        """Operator call: orders still PENDING after this long."""
        return self.orders.stuck_pending(int(older_than_seconds))

    @rpc
    def cancel_order(self, order_id, reason):
        """Operator call: cancel a PENDING order (refused for a final one); stock is restored and any
        charge refunded through the usual compensations, and the customer is told."""
        note = audit.reason(reason)
        order, version = self.orders.cancel(order_id, models.CancelReason.OPERATOR, note, self.operator)
        log.warning("audit: %s cancelled order %s: %s", self.operator, order_id, note, extra={"order_id": order_id})
        ORDERS_COMPLETED.labels(models.OrderStatus.CANCELLED).inc()
        self.cache.put_now(order, version)  # before the reply: whoever asked reads the order next
        return order

    @rpc
    def find_orders(self, email=None, status=None, older_than_seconds=None, limit=50):
        """Operator call: orders newest first, of the user with this email, in this status, at least this old."""
        query = schemas.order_search(email, status, older_than_seconds, limit)
        email = query.pop("email")
        try:
            user_ids = None if email is None else [self.customers.user_id_by_email(email)]
        except UserNotFound:
            return []  # nobody with this email: no orders
        return self.orders.find(user_ids, **query)

    @rpc
    def outbox_backlog(self):
        """Operator call: unpublished events and the age of the oldest."""
        return self.relay.backlog()

    @timer(interval=REDRIVE_INTERVAL_SECONDS)
    def redrive_stuck_orders(self):
        """Recover orders whose events the broker lost (see OrderStore.redrive_stuck)."""
        redriven = self.orders.redrive_stuck(REDRIVE_AFTER_SECONDS)
        if redriven:
            ORDERS_REDRIVEN.inc(len(redriven))
            log.warning("redrove %d unsettled orders: %s", len(redriven), ", ".join(redriven))

    @timer(interval=REDRIVE_INTERVAL_SECONDS)
    def cancel_overdue_orders(self):
        """An order nobody could finish (a stuck payment, a service down for too long) must not hold stock forever."""
        for order, version in self.orders.cancel_overdue(ORDER_DEADLINE_SECONDS):
            log.warning("cancelled order %s: still PENDING after %ss", order["id"], ORDER_DEADLINE_SECONDS,
                        extra={"order_id": order["id"]})
            ORDERS_COMPLETED.labels(models.OrderStatus.CANCELLED).inc()
            self._cache(order, version)

    @rpc
    def redrive_order(self, order_id):
        """Operator call: publish this unsettled order's last event again now."""
        redriven = self.orders.redrive_stuck(0, order_id=order_id, operator=self.operator)
        log.warning("audit: %s redrove order %s: %s", self.operator, order_id, "done" if redriven else "nothing to do",
                    extra={"order_id": order_id})
        return redriven

    @timer(interval=15, eager=True)
    def record_pending_orders(self):
        """Feeds the "orders stuck in PENDING" alert."""
        summary = self.orders.pending_summary()
        ORDERS_PENDING.set(summary["pending"])
        ORDERS_PENDING_OLDEST_AGE.set(summary["oldest_age_seconds"])

    @kafka_event(events.INVENTORY_TOPIC, events.STOCK_UPDATED)
    def on_stock_updated(self, event):
        self._apply(event)

    @kafka_event(events.INVENTORY_TOPIC, events.STOCK_UNAVAILABLE)
    def on_stock_unavailable(self, event):
        self._apply(event)

    @kafka_event(events.INVENTORY_TOPIC, events.STOCK_RESTORED)
    def on_stock_restored(self, event):
        self._apply(event)

    @kafka_event(events.PAYMENTS_TOPIC, events.PAYMENT_SUCCESS)
    def on_payment_success(self, event):
        self._apply(event)

    @kafka_event(events.PAYMENTS_TOPIC, events.PAYMENT_FAILED)
    def on_payment_failed(self, event):
        self._apply(event)

    @kafka_event(events.PAYMENTS_TOPIC, events.PAYMENT_REFUNDED)
    def on_payment_refunded(self, event):
        self._apply(event)

    @kafka_event(events.PAYMENTS_TOPIC, events.PAYMENT_ACTION_REQUIRED)
    def on_payment_action_required(self, event):
        self._apply(event)

    @kafka_event(events.PAYMENTS_TOPIC, events.PAYMENT_VOIDED)
    def on_payment_voided(self, event):
        self._apply(event)

    def _apply(self, event):
        order, version, final_status = self.orders.apply(event)
        self._cache(order, version)  # a redelivery too: an earlier cache write may have failed
        if final_status:
            ORDERS_COMPLETED.labels(final_status).inc()

    def _cache(self, order, version):
        """Written once this worker's result is handled, best effort (OrderCacheProvider): the
        database is the truth, and the versioned entry is rewritten on the next change."""
        self.cache.put(order, version)
