"""The REST contract's request bodies and queries, one pydantic model each.

The services validate what they are sent with these models (``parse``), and
the gateway's OpenAPI document takes their JSON Schema, so the server and
its published contract cannot drift. A refusal is the usual 400
``validation_error`` whose details name each field (``items[0].quantity``,
``address.city``). A price is checked against its currency here too (the
product's is given as validation context); rules that need the database stay
in the service. A few models check RPC arguments rather than REST bodies
(``AvailabilityCheck``, ``StockChange``, ``StockLevel``), so an operator's
call and the admin's request are held to one rule.
"""
import json
from typing import Annotated, Literal, Optional

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints, field_validator,
)
from pydantic import ValidationError as PydanticValidationError

from shop_common.errors import ValidationError
from shop_common.money import DEFAULT_CURRENCY, check_currency, parse_amount


def _no_nul(value):
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _stripped(min_length=1, max_length=200):
    return Annotated[str, Field(min_length=min_length, max_length=max_length), AfterValidator(_no_nul)]


Text = _stripped()
ProductId = _stripped(max_length=64)
Reason = _stripped(max_length=500)
Description = _stripped(min_length=0, max_length=5000)
# A decimal amount in the currency's own minor units: "19.99" USD, "1500" JPY (checked against the currency later).
Amount = Annotated[str, StringConstraints(strip_whitespace=False, max_length=14,
                                          pattern=r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,3})?$")]
Units = Annotated[StrictInt, Field(ge=0, le=1_000_000_000)]


class RequestModel(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, frozen=True)


class ChangeModel(RequestModel):
    """A partial update: unknown fields are refused (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


# -- users -----------------------------------------------------------------
class Address(RequestModel):
    line1: Text
    line2: Optional[Text] = None
    city: Text
    postal_code: _stripped(max_length=20)
    country: _stripped(max_length=56)


def _small_object(value):
    if len(json.dumps(value)) > 4096:
        raise ValueError("must be an object of at most 4 KiB")
    return value


Preferences = Annotated[dict, AfterValidator(_small_object)]
Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), AfterValidator(_no_nul)]


# Passwords are taken exactly as typed: never stripped.
Password = Annotated[str, StringConstraints(strip_whitespace=False, min_length=8, max_length=256)]


class Registration(RequestModel):
    email: Email
    password: Password
    name: Text
    address: Address
    preferences: Preferences = Field(default_factory=dict)


class EmailLookup(RequestModel):
    """An email as accounts are found by it (login, the operator's lookup)."""

    email: Email


class Login(RequestModel):
    email: Annotated[str, Field(min_length=1, max_length=254)]
    password: Annotated[str, StringConstraints(strip_whitespace=False, min_length=1, max_length=256)]


class ProfileChanges(ChangeModel):
    name: Optional[Text] = None
    address: Optional[Address] = None
    preferences: Optional[Preferences] = None


# -- products --------------------------------------------------------------
def _sold_here(currency):
    try:
        return check_currency(currency)
    except ValidationError as exc:
        raise ValueError(exc.details["currency"])


def _priced_in(price, info):
    """The price against its currency: the body's (a new product) or the product's (a change, as context)."""
    currency = info.data.get("currency") or (info.context or {}).get("currency")
    if price is not None and currency:
        try:
            parse_amount(price, currency)
        except ValidationError as exc:
            raise ValueError(exc.details["price"])
    return price


class NewProduct(RequestModel):
    sku: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    name: Text
    description: Description = ""
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="one of SHOP_CURRENCIES"),
                        AfterValidator(_sold_here)] = DEFAULT_CURRENCY
    price: Amount  # after currency: checked against it
    stock: Units

    _price_in_currency = field_validator("price")(_priced_in)


class ProductChanges(ChangeModel):
    name: Optional[Text] = None
    description: Optional[Description] = None
    price: Optional[Amount] = Field(default=None, description="in the product's currency")
    stock: Optional[Units] = Field(default=None, description="set by the Inventory service, recorded as a delta")
    active: Optional[StrictBool] = Field(default=None, description="false hides it from the catalogue and orders")

    _price_in_currency = field_validator("price")(_priced_in)


class PageQuery(RequestModel):
    page: int = Field(default=1, ge=1, le=100_000)
    page_size: int = Field(default=20, ge=1, le=100)
    q: Optional[_stripped(min_length=0, max_length=100)] = None


# -- orders ----------------------------------------------------------------
class OrderLine(RequestModel):
    product_id: ProductId
    quantity: Annotated[StrictInt, Field(ge=1, le=1000)]


class NewOrder(RequestModel):
    items: list[OrderLine] = Field(min_length=1, max_length=50, description="each product once")
    payment_method: _stripped(max_length=100) = Field(description="a Stripe PaymentMethod id")


class AvailabilityCheck(RequestModel):
    """What the Order service asks the Product service about (RPC, not REST)."""

    items: list[OrderLine] = Field(min_length=1, max_length=50)


class OrderSearch(RequestModel):
    status: Optional[Literal["PENDING", "PAID", "PAYMENT_FAILED", "CANCELLED"]] = None
    older_than_seconds: Optional[Annotated[StrictInt, Field(ge=0, le=10 * 366 * 86400)]] = None
    limit: Annotated[StrictInt, Field(ge=1, le=500)] = 50


class CancelRequest(RequestModel):
    reason: Reason


# -- stock -----------------------------------------------------------------
def _not_zero(delta):
    if delta == 0:
        raise ValueError("a whole number of units to add (or, negative, remove), not 0")
    return delta


Delta = Annotated[StrictInt, Field(ge=-1_000_000, le=1_000_000), AfterValidator(_not_zero)]
# Product ids as Inventory is given them (a UUID), taken as they are.
StockProductId = Annotated[str, StringConstraints(strip_whitespace=False, min_length=1, max_length=36)]


class StockAdjustment(RequestModel):
    delta: Delta
    reason: Reason


class StockChange(StockAdjustment):
    """inventory_service.adjust_stock's arguments (RPC): the REST body and the product."""

    product_id: StockProductId


class StockLevel(RequestModel):
    """inventory_service.set_stock's arguments (RPC)."""

    product_id: StockProductId
    stock: Units
    reason: Reason


REQUEST_MODELS = (Registration, Login, ProfileChanges, NewProduct, ProductChanges, NewOrder, CancelRequest,
                  StockAdjustment)


def field_name(location):
    """("items", 0, "quantity") -> "items[0].quantity"."""
    name = ""
    for part in location:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def parse(model, data, what="invalid request", **context):
    """``data`` as ``model``, or a ValidationError whose details name every field that is wrong."""
    if not isinstance(data, dict):
        raise ValidationError("body must be a JSON object", {"body": "must be an object"})
    try:
        return model.model_validate(data, context=context)
    except PydanticValidationError as exc:
        details = {}
        for error in exc.errors(include_url=False, include_input=False):
            details.setdefault(field_name(error["loc"]), error["msg"].removeprefix("Value error, "))
        raise ValidationError(what, details) from None
