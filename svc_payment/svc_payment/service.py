import logging

from nameko.timer import timer

from shop_common import events
from shop_common.kafka import kafka_event
from shop_common.outbox import OutboxRelay
from shop_common.rpc import rpc
from shop_common.service import ServiceBase
from svc_payment import models, schemas
from svc_payment.dependencies import PaymentProvider, Payments

log = logging.getLogger(__name__)

REFUND_RETRY_AFTER_SECONDS = 30


class PaymentService(ServiceBase):
    name = "payment_service"
    package = "svc-payment"

    payments = Payments()
    provider = PaymentProvider()
    relay = OutboxRelay(models.outbox, models.inbox)

    @kafka_event(events.ORDERS_TOPIC, events.ORDER_CREATED)
    def on_order_created(self, event):
        with self.payments.exclusive(event["order_id"]):
            payment = self.payments.begin_charge(event, schemas.charge_request(event))
            if payment is None:
                return
            outcome = self.provider.charge(
                payment, record_intent=lambda intent_id: self.payments.record_intent(payment["order_id"], intent_id)
            )
            to_refund = self.payments.finish_charge(event, outcome)
            if to_refund:
                self._refund(to_refund)

    @kafka_event(events.ORDERS_TOPIC, events.ORDER_COMPLETED)
    def on_order_completed(self, event):
        with self.payments.exclusive(event["order_id"]):
            to_refund = self.payments.release_for_order(event)
            if to_refund:
                self._refund(to_refund)

    @timer(interval=REFUND_RETRY_AFTER_SECONDS)
    def retry_pending_refunds(self):
        """Finish refunds a crash or an outage left half done; one that fails never holds up the others."""
        for order_id in self.payments.refunds_due(REFUND_RETRY_AFTER_SECONDS):
            try:
                with self.payments.exclusive(order_id):
                    payment = self.payments.refund_due(order_id)
                    if payment is not None:
                        self._refund(payment)
            except Exception as exc:
                log.warning("refund not finished, retrying later: %r", exc, extra={"order_id": order_id})

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
