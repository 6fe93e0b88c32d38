"""The events of the shop: the envelope every Kafka message carries, and each payload's shape.

Value: JSON with ``event_id``, ``event_type``, ``event_version``,
``occurred_at``, ``order_id`` (where it concerns an order), ``producer`` and
``payload``. Key: the order id, so every event of one order lands on one
partition. Trace context rides in the message headers, not in the value.

Each payload is defined once, here, as a pydantic model per (type, version).
``new_event`` checks what a producer emits against it and ``decode`` checks
what a consumer receives, so a malformed or unknown-version event is refused
at the edge (and dead-lettered) instead of failing deep in a handler.
Versioning: a new optional field is a compatible change within a version;
removing, retyping or requiring a field means a new version. Each version's
JSON Schema is committed under ``contracts/events`` (``make contracts``;
``shop_common.messaging.event_contracts`` checks both rules). Consumers learn a version
before producers send it: ``decode`` upcasts every older version to the
latest, so a handler reads one shape, and a producer can be held at an older
version during a rollout (``as_version``).
"""
import json
import uuid
from datetime import datetime, timezone
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ORDER_CREATED = "OrderCreated"
ORDER_COMPLETED = "OrderCompleted"
STOCK_UPDATED = "StockUpdated"
STOCK_UNAVAILABLE = "StockUnavailable"
STOCK_RESTORED = "StockRestored"
STOCK_ADJUSTED = "StockAdjusted"
PAYMENT_SUCCESS = "PaymentSuccess"
PAYMENT_FAILED = "PaymentFailed"
PAYMENT_REFUNDED = "PaymentRefunded"
PAYMENT_VOIDED = "PaymentVoided"
PAYMENT_ACTION_REQUIRED = "PaymentActionRequired"

ORDERS_TOPIC = "shop.orders"
INVENTORY_TOPIC = "shop.inventory"
PAYMENTS_TOPIC = "shop.payments"
DEAD_LETTER_TOPIC = "shop.deadletter"

# One topic per producing domain keeps an order's events from one producer in order.
TOPIC_OF = {
    ORDER_CREATED: ORDERS_TOPIC,
    ORDER_COMPLETED: ORDERS_TOPIC,
    STOCK_UPDATED: INVENTORY_TOPIC,
    STOCK_UNAVAILABLE: INVENTORY_TOPIC,
    STOCK_RESTORED: INVENTORY_TOPIC,
    STOCK_ADJUSTED: INVENTORY_TOPIC,
    PAYMENT_SUCCESS: PAYMENTS_TOPIC,
    PAYMENT_FAILED: PAYMENTS_TOPIC,
    PAYMENT_REFUNDED: PAYMENTS_TOPIC,
    PAYMENT_VOIDED: PAYMENTS_TOPIC,
    PAYMENT_ACTION_REQUIRED: PAYMENTS_TOPIC,
}
ALL_TOPICS = (ORDERS_TOPIC, INVENTORY_TOPIC, PAYMENTS_TOPIC, DEAD_LETTER_TOPIC)

OrderId = Field(min_length=1, max_length=36)
ProductId = Field(min_length=1, max_length=64)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    order_id: str = OrderId


class OrderLine(BaseModel):
    product_id: str = ProductId
    quantity: int = Field(ge=1, le=1000)
    unit_price_cents: int = Field(ge=0)


class OrderCreatedV1(_Payload):
    user_id: str = Field(min_length=1, max_length=36)
    items: list[OrderLine] = Field(min_length=1, max_length=50)
    total_cents: int = Field(ge=0)
    currency: str = Field(min_length=3, max_length=3)
    payment_method: str = Field(min_length=1, max_length=100)


class Money(BaseModel):
    """An amount in its currency's minor units (ISO 4217: cents, or yen for JPY)."""

    amount_minor: int = Field(ge=0)
    currency: str = Field(min_length=3, max_length=3)


class PricedLine(BaseModel):
    product_id: str = ProductId
    quantity: int = Field(ge=1, le=1000)
    unit_price: Money


class OrderCreatedV2(_Payload):
    """v2: every price carries its currency (v1 had bare cents and one currency beside them)."""

    user_id: str = Field(min_length=1, max_length=36)
    items: list[PricedLine] = Field(min_length=1, max_length=50)
    total: Money
    payment_method: str = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one_currency_adding_up(self):
        if any(line.unit_price.currency != self.total.currency for line in self.items):
            raise ValueError("every line is priced in the order's currency")
        if sum(line.unit_price.amount_minor * line.quantity for line in self.items) != self.total.amount_minor:
            raise ValueError("total.amount_minor is the sum of the lines")
        return self

    def lines(self):
        """[(product_id, quantity)] sorted by product id, so concurrent orders lock rows in one order."""
        return sorted((line.product_id, line.quantity) for line in self.items)


class OrderCompletedV1(_Payload):
    """The Order service's final word; Inventory and Payment compensate a non-PAID one."""

    user_id: str = Field(min_length=1, max_length=36)
    status: Literal["PAID", "PAYMENT_FAILED", "CANCELLED"]
    reason: Optional[str] = Field(default=None, max_length=200)


class StockLine(BaseModel):
    product_id: str = ProductId
    quantity: int = Field(ge=1)
    stock: int = Field(ge=0)


class StockUpdatedV1(_Payload):
    items: list[StockLine] = Field(min_length=1)


class StockUnavailableV1(_Payload):
    product_id: str = ProductId
    requested: int = Field(ge=1)


class StockRestoredV1(_Payload):
    """The order holds no stock any more; ``items`` is what was given back (maybe nothing)."""

    items: list[StockLine]


class StockAdjustedV1(BaseModel):
    """Stock changed by hand (inventory_service.adjust_stock): not about an order."""

    model_config = ConfigDict(extra="allow", frozen=True)

    product_id: str = ProductId
    delta: int
    stock: int = Field(ge=0)
    reason: str = Field(min_length=1, max_length=500)
    by: str = Field(min_length=1, max_length=100)


class PaymentSuccessV1(_Payload):
    amount: str
    currency: str = Field(min_length=3, max_length=3)
    payment_intent: str = Field(min_length=1, max_length=100)


class PaymentFailedV1(_Payload):
    failure_code: str = Field(max_length=100)
    failure_message: Optional[str] = Field(default=None, max_length=1000)


class PaymentRefundedV1(_Payload):
    refund_id: str = Field(min_length=1, max_length=100)
    amount: str
    currency: str = Field(min_length=3, max_length=3)
    # An operator's refund (compatible additions: optional).
    reason: Optional[str] = Field(default=None, max_length=500)
    requested_by: Optional[str] = Field(default=None, max_length=100)


class PaymentVoidedV1(_Payload):
    """No money was taken for the order, and none will be."""


class NextAction(BaseModel):
    type: str = Field(min_length=1, max_length=100)
    redirect_url: Optional[str] = Field(default=None, max_length=2000)


class PaymentActionRequiredV1(_Payload):
    """The shopper must authenticate the payment (3-D Secure) with Stripe.js before ``expires_at``."""

    client_secret: str = Field(min_length=1, max_length=300)
    next_action: NextAction
    expires_at: datetime


PAYLOADS = {
    (ORDER_CREATED, 1): OrderCreatedV1,
    (ORDER_CREATED, 2): OrderCreatedV2,
    (ORDER_COMPLETED, 1): OrderCompletedV1,
    (STOCK_UPDATED, 1): StockUpdatedV1,
    (STOCK_UNAVAILABLE, 1): StockUnavailableV1,
    (STOCK_RESTORED, 1): StockRestoredV1,
    (STOCK_ADJUSTED, 1): StockAdjustedV1,
    (PAYMENT_SUCCESS, 1): PaymentSuccessV1,
    (PAYMENT_FAILED, 1): PaymentFailedV1,
    (PAYMENT_REFUNDED, 1): PaymentRefundedV1,
    (PAYMENT_VOIDED, 1): PaymentVoidedV1,
    (PAYMENT_ACTION_REQUIRED, 1): PaymentActionRequiredV1,
}
KNOWN_TYPES = {event_type for event_type, _ in PAYLOADS}
LATEST = {event_type: max(version for known, version in PAYLOADS if known == event_type)
          for event_type in KNOWN_TYPES}


def _order_created_v1_to_v2(payload):
    currency = payload["currency"]
    return {
        **{key: value for key, value in payload.items() if key not in ("total_cents", "currency", "items")},
        "items": [{"product_id": line["product_id"], "quantity": line["quantity"],
                   "unit_price": {"amount_minor": line["unit_price_cents"], "currency": currency}}
                  for line in payload["items"]],
        "total": {"amount_minor": payload["total_cents"], "currency": currency},
    }


def _order_created_v2_to_v1(payload):
    return {
        **{key: value for key, value in payload.items() if key not in ("total", "items")},
        "items": [{"product_id": line["product_id"], "quantity": line["quantity"],
                   "unit_price_cents": line["unit_price"]["amount_minor"]} for line in payload["items"]],
        "total_cents": payload["total"]["amount_minor"],
        "currency": payload["total"]["currency"],
    }


# (type, from version) -> the payload one version up, and one version down (a producer held back).
UPCASTERS = {(ORDER_CREATED, 1): _order_created_v1_to_v2}
DOWNCASTERS = {(ORDER_CREATED, 2): _order_created_v2_to_v1}


class Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event_id: str = Field(min_length=1, max_length=64)
    event_type: str = Field(min_length=1, max_length=64)
    event_version: int = Field(ge=1)
    occurred_at: datetime
    order_id: Optional[str] = Field(default=None, min_length=1, max_length=36)
    producer: Optional[str] = Field(default=None, max_length=100)
    payload: dict


class MalformedEvent(ValueError):
    """A message value that is not a valid envelope, or whose payload breaks its contract."""


def now_iso():
    return datetime.now(timezone.utc).isoformat()


def new_event(event_type, payload, order_id=None, producer=None, version=None):
    """An event of the latest version of ``event_type`` unless ``version`` says otherwise."""
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "event_version": version or LATEST.get(event_type, 1),
        "occurred_at": now_iso(),
        "order_id": order_id,
        "producer": producer,
        "payload": payload,
    }
    return validate(event)


def validate(event):
    """The event with its payload checked against its contract; raises MalformedEvent."""
    try:
        envelope = Envelope.model_validate(event)
    except ValidationError as exc:
        raise MalformedEvent(f"invalid envelope: {_summary(exc)}")
    model = PAYLOADS.get((envelope.event_type, envelope.event_version))
    if model is None:
        if envelope.event_type in KNOWN_TYPES:
            raise MalformedEvent(f"unknown version {envelope.event_version} of {envelope.event_type}")
        return event  # not one of ours (no handler will want it): the envelope is all we check
    try:
        payload = model.model_validate(envelope.payload)
    except ValidationError as exc:
        raise MalformedEvent(f"invalid {envelope.event_type} payload: {_summary(exc)}")
    if envelope.order_id != getattr(payload, "order_id", None):
        raise MalformedEvent("the envelope's order_id differs from the payload's")
    return dict(event, payload=payload.model_dump(mode="json"))


def as_version(event, version):
    """A valid event (latest or not) carried up or down to ``version`` of its type."""
    event_type, current = event["event_type"], event["event_version"]
    payload = event["payload"]
    while current != version:
        step = UPCASTERS if current < version else DOWNCASTERS
        cast = step.get((event_type, current))
        if cast is None:
            raise MalformedEvent(f"{event_type} v{current} cannot become v{version}")
        payload = cast(payload)
        current += 1 if current < version else -1
    return validate(dict(event, event_version=version, payload=payload))


def order_was_paid(event):
    """An OrderCompleted saying the order was paid: nothing to compensate (Inventory and Payment only record it)."""
    return event["payload"]["status"] == "PAID"


def payload_of(event):
    """The decoded event's payload as its model (e.g. ``OrderCreatedV2``: lines(), total)."""
    return PAYLOADS[(event["event_type"], event["event_version"])].model_validate(event["payload"])


def _summary(exc):
    return "; ".join(f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
                     for error in exc.errors()[:5])


def encode(event):
    return json.dumps(event, separators=(",", ":")).encode()


def decode(raw, verify=None):
    """The event in ``raw``, at the latest version of its type; ``verify(event)`` first sees it as sent
    (shop_common.messaging.event_signing). Raises MalformedEvent."""
    try:
        event = json.loads(raw)
    except (TypeError, ValueError) as exc:
        raise MalformedEvent(f"not JSON: {exc}")
    if not isinstance(event, dict):
        raise MalformedEvent("not a JSON object")
    if verify is not None:
        verify(event)
    event = validate(event)
    latest = LATEST.get(event["event_type"])
    if latest is not None and event["event_version"] < latest:
        event = as_version(event, latest)  # handlers read one shape, whichever version was sent
    return event
