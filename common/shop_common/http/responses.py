"""The REST contract's response bodies, one pydantic model each.

The gateway's OpenAPI document takes their JSON Schema (as it takes the
request models' from ``shop_common.http.api``), and the fuzzing tests check every
live answer against that document, so what the services return and what the
contract promises are one definition. A field is required when every answer
has it; the others may be left out, never null unless said.
"""
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, Field, WithJsonSchema

from shop_common.money import CURRENCIES

# In the currency's minor units: "19.99" USD, "1500" JPY.
Money = Annotated[str, Field(pattern=r"^(0|[1-9]\d*)(\.\d+)?$")]
Currency = Annotated[str, WithJsonSchema({"enum": list(CURRENCIES)})]
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
OrderStatus = Literal["PENDING", "PAID", "PAYMENT_FAILED", "CANCELLED"]
PaymentStatus = Literal["pending", "requires_action", "succeeded", "failed", "refunded", "voided"]


class ResponseModel(BaseModel):
    pass


class ErrorBody(ResponseModel):
    code: str
    message: str
    details: dict = None


class Error(ResponseModel):
    error: ErrorBody


class Status(ResponseModel):
    status: str = None


class UserSummary(ResponseModel):
    id: str = None
    email: str = None
    name: str = None


class Token(ResponseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    refresh_token: str = None
    refresh_expires_in: int = None


class LoggedOut(ResponseModel):
    logged_out: Literal[True] = None
    everywhere: bool = None


class PostalAddress(ResponseModel):
    """An address as the shop keeps it (the request's ``Address``, once accepted)."""
    line1: str
    line2: str = None
    city: str
    postal_code: str
    country: str


class User(ResponseModel):
    id: str = None
    email: str = None
    name: str = None
    address: PostalAddress = None
    preferences: dict = None


class Notification(ResponseModel):
    order_id: str = None
    kind: str = None
    message: str = None
    created_at: str = None


class Notifications(ResponseModel):
    items: list[Notification] = None


class Product(ResponseModel):
    id: str = None
    sku: str = None
    name: str = None
    description: str = None
    price: Money = None
    currency: Currency = None
    stock: Annotated[int, Field(ge=0)] = None
    active: Annotated[bool, Field(description="false: no longer sold (kept for its orders)")] = None


class ProductPage(ResponseModel):
    items: list[Product] = None
    page: int = None
    page_size: Annotated[int, Field(le=100)] = None
    total: int = None


class OrderItem(ResponseModel):
    product_id: str = None
    quantity: int = None
    unit_price: Money = None


class NextAction(ResponseModel):
    type: str = None
    redirect_url: Optional[str] = None


class Payment(ResponseModel):
    """Where the order's payment stands. While status is requires_action the shopper must authenticate
    (3-D Secure) before expires_at: client_secret for Stripe.js, or redirect_url when set."""
    status: PaymentStatus
    client_secret: str = None
    next_action: NextAction = None
    expires_at: Timestamp = None


class Order(ResponseModel):
    id: str = None
    status: OrderStatus = None
    items: list[OrderItem] = None
    total: Money = None
    currency: Currency = None
    message: Optional[str] = None
    shipping_address: Annotated[PostalAddress, Field(description="the customer's address when the order was placed")] = None
    payment: Payment = None
    created_at: Timestamp = None
    updated_at: Timestamp = None


def public_order(order):
    """An order as the contract shows it: the service's view without the fields only services see (its owner)."""
    return {key: value for key, value in order.items() if key in Order.model_fields}


class Orders(ResponseModel):
    items: list[Order] = None


class HistoryEntry(ResponseModel):
    event_id: Optional[str] = None
    event_type: str = None
    status_after: str = None
    detail: dict = None
    recorded_at: Timestamp = None


class AdminOrder(ResponseModel):
    order: Order = None
    history: list[HistoryEntry] = None
    payment: Annotated[Optional[dict], Field(description="as the Payment service recorded it")] = None
    reservation: Annotated[Optional[dict], Field(description="what Inventory did with the stock")] = None
    unavailable: Annotated[list[str], Field(description="services that did not answer in time (their part is null)")] = None


class StockEntry(ResponseModel):
    id: int = None
    product_id: str = None
    delta: int = None
    stock_after: Annotated[int, Field(ge=0)] = None
    reason: str = None
    by: str = None
    recorded_at: Timestamp = None


class StockLedger(ResponseModel):
    items: list[StockEntry] = None


class WebhookReceipt(ResponseModel):
    received: Literal[True] = None
    applied: bool = None


RESPONSE_MODELS = (Error, Status, UserSummary, Token, LoggedOut, User, Notifications, Product, ProductPage, Order,
                   Orders, AdminOrder, StockEntry, StockLedger, WebhookReceipt)
