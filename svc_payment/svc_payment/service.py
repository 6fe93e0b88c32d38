from nameko.rpc import rpc
from nameko.timer import timer

from shop_common import events
from shop_common.kafka import kafka_event
from shop_common.outbox import OutboxRelay
from shop_common.service import ServiceBase
from svc_payment import models, schemas
from svc_payment.dependencies import PaymentProvider, Payments

REFUND_RETRY_AFTER_SECONDS = 30


class PaymentService(ServiceBase):
    name = "payment_service"
    package = "svc-payment"

    payments = Payments()
    provider = PaymentProvider()
    relay = OutboxRelay(models.outbox)

    @kafka_event(events.ORDERS_TOPIC, events.ORDER_CREATED)
    def on_order_created(self, event):
        payment = self.payments.begin_charge(event, schemas.charge_request(event))
        if payment is None:
            return
        outcome = self.provider.charge(
            payment, record_intent=lambda intent_id: self.payments.record_intent(payment["order_id"], intent_id)
        )
        to_refund = self.payments.finish_charge(event, outcome)
        if to_refund:
            self._refund(to_refund)

    @kafka_event(events.INVENTORY_TOPIC, events.STOCK_UNAVAILABLE)
    def on_stock_unavailable(self, event):
        to_refund = self.payments.cancel_for_order(event)
        if to_refund:
            self._refund(to_refund)

    @timer(interval=REFUND_RETRY_AFTER_SECONDS)
    def retry_pending_refunds(self):
        """Finish refunds a crash left half done (decided, not yet sent to Stripe)."""
        for payment in self.payments.refunds_due(REFUND_RETRY_AFTER_SECONDS):
            self._refund(payment)

    @rpc
    def get_payment(self, order_id):
        """Operator call: the payment of an order, as recorded here."""
        return self.payments.get_payment(order_id)

    @rpc
    def outbox_backlog(self):
        """Operator call: unpublished events and the age of the oldest."""
        return self.relay.backlog()

    def _refund(self, payment):
        refund_id = self.provider.refund(payment)
        self.payments.finish_refund(payment["order_id"], refund_id)
