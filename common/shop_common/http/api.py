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
import re
from typing import Annotated, Any, Literal, Optional

from pydantic import (
    AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, TypeAdapter, WithJsonSchema,
    field_validator, model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from shop_common.errors import ValidationError
from shop_common.money import CURRENCIES, DEFAULT_CURRENCY, check_currency, parse_amount


# What no string the shop is sent may hold, as regular-expression character ranges: control characters.
# Free text may hold tabs and line breaks; one-line text (identifiers, path and query values) not even
# those. The gateway's edge refuses them in every string (web_gateway.edge), and every text field's JSON
# Schema states it, so the published contract promises nothing the server refuses. Lone surrogates are
# refused too, but cannot be written in a JSON Schema pattern (ECMA and Rust engines reject them): the
# contract says strings are Unicode text, which excludes them.
CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
LINE_CONTROL = r"\x00-\x1f\x7f-\x9f"
SURROGATES = re.compile("[\ud800-\udfff]")


def _text(min_length=1, max_length=200, line=False, strip=True, pattern=None):
    """A string field: its length counted as sent, no control characters, surrounding spaces trimmed
    (``strip``), and when ``min_length`` is set, not blank. ``pattern`` adds a shape (checked trimmed)."""
    control = LINE_CONTROL if line else CONTROL
    rule = pattern or (rf"^[^{control}]*[^\s{control}][^{control}]*$" if min_length else rf"^[^{control}]*$")
    if pattern and strip:  # spaces around are trimmed (other white space is refused: it is control characters)
        rule = r"^ *" + pattern.removeprefix("^").removesuffix("$") + r" *$"
    compiled = re.compile(rule, re.DOTALL)

    def check(value):
        if not isinstance(value, str):
            return value  # the type check names it
        if len(value) > max_length:
            raise ValueError(f"at most {max_length} characters")
        if not compiled.fullmatch(value) or SURROGATES.search(value):
            if re.search(f"[{control}]", value) or SURROGATES.search(value):
                raise ValueError("must not contain control characters")
            raise ValueError("must not be blank" if not pattern else f"must match {pattern}")
        return value.strip() if strip else value

    return Annotated[str, BeforeValidator(check),
                     Field(min_length=min_length, max_length=max_length, json_schema_extra={"pattern": rule})]


def _whole_number(value):
    """JSON's integers: 3 and 3.0 (one number in JSON Schema), never true, "3" or 3.5."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _whole(minimum, maximum):
    return Annotated[StrictInt, Field(ge=minimum, le=maximum), BeforeValidator(_whole_number)]


Text = _text()
ProductId = _text(max_length=64, line=True)
Reason = _text(max_length=500)
Description = _text(min_length=0, max_length=5000)
# A decimal amount in the currency's own minor units: "19.99" USD, "1500" JPY (checked against the currency later).
Amount = _text(max_length=14, strip=False, pattern=r"^(0|[1-9][0-9]{0,9})(\.[0-9]{1,3})?$")
Units = _whole(0, 1_000_000_000)


class RequestModel(BaseModel):
    """A request: unknown fields are refused (a typo must not be silently ignored)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _at_least_one_field(schema):
    schema["minProperties"] = 1
    for field in schema["properties"].values():
        field.pop("default", None)  # absent means unchanged; null is not a value any field takes


class ChangeModel(RequestModel):
    """A partial update: at least one field; a field that is sent may not be null (nothing is emptied)."""

    model_config = ConfigDict(json_schema_extra=lambda schema, model: _at_least_one_field(schema))

    @model_validator(mode="before")
    @classmethod
    def _something(cls, data):
        if isinstance(data, dict) and not data:
            raise ValueError("give at least one of " + ", ".join(cls.model_fields))
        return data


# -- users -----------------------------------------------------------------
class Address(RequestModel):
    line1: Text
    line2: Optional[Text] = None
    city: Text
    postal_code: _text(max_length=20)
    country: _text(max_length=56)


# A flat map of the shopper's choices: {"newsletter": true, "lang": "en"}.
PreferenceText = _text(min_length=0, max_length=200)


def _preference_value(value):
    if isinstance(value, str):
        return TypeAdapter(PreferenceText).validate_python(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    raise ValueError("must be a string, number, boolean or null")


PreferenceValue = Annotated[Any, BeforeValidator(_preference_value), WithJsonSchema(
    {**TypeAdapter(PreferenceText).json_schema(), "type": ["string", "number", "boolean", "null"]})]
# Keys that do not match the key pattern are not allowed either (pydantic writes it as patternProperties).
Preferences = Annotated[dict[_text(max_length=64, line=True), PreferenceValue],
                        Field(max_length=50, json_schema_extra={"additionalProperties": False})]
_EMAIL_PART = rf"[^@\s{LINE_CONTROL}]+"
Email = _text(max_length=254, line=True, pattern=rf"^{_EMAIL_PART}@{_EMAIL_PART}\.{_EMAIL_PART}$")


# Passwords are taken exactly as typed: never stripped.
Password = _text(min_length=8, max_length=256, strip=False)


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
    email: _text(max_length=254, line=True)
    password: _text(max_length=256, strip=False)


RefreshToken = _text(max_length=200, line=True, strip=False)


class RefreshRequest(RequestModel):
    refresh_token: RefreshToken


class LogoutRequest(RequestModel):
    refresh_token: Optional[RefreshToken] = Field(default=None, description="ends this session (its family)")
    everywhere: StrictBool = Field(default=False, description="ends every session and revokes every access token")


class PasswordChange(RequestModel):
    current_password: _text(max_length=256, strip=False)
    new_password: Password


class ProfileChanges(ChangeModel):
    name: Text = None
    address: Address = None
    preferences: Preferences = None


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


Sku = _text(max_length=64, strip=False, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class NewProduct(RequestModel):
    sku: Sku
    name: Text
    description: Description = ""
    currency: Annotated[str, Field(json_schema_extra={"enum": list(CURRENCIES)}), AfterValidator(_sold_here)] \
        = DEFAULT_CURRENCY
    price: Amount  # after currency: checked against it
    stock: Units

    _price_in_currency = field_validator("price")(_priced_in)


class ProductChanges(ChangeModel):
    name: Text = None
    description: Description = None
    price: Amount = Field(default=None, description="in the product's currency")
    stock: Units = Field(default=None, description="set by the Inventory service, recorded as a delta")
    active: StrictBool = Field(default=None, description="false hides it from the catalogue and orders")

    _price_in_currency = field_validator("price")(_priced_in)


class PageQuery(RequestModel):
    page: int = Field(default=1, ge=1, le=100_000)
    page_size: int = Field(default=20, ge=1, le=100)
    q: _text(min_length=0, max_length=100, line=True) = None


# -- orders ----------------------------------------------------------------
MAX_QUANTITY = 1000  # units of one product in one order (OrderCreated carries no more)


class OrderLine(RequestModel):
    product_id: ProductId
    quantity: _whole(1, MAX_QUANTITY)


class NewOrder(RequestModel):
    items: list[OrderLine] = Field(min_length=1, max_length=50, description="each product once")
    payment_method: _text(max_length=100, line=True) = Field(description="a Stripe PaymentMethod id")


class AvailabilityCheck(RequestModel):
    """What the Order service asks the Product service about (RPC, not REST)."""

    items: list[OrderLine] = Field(min_length=1, max_length=50)


class OrderSearch(RequestModel):
    email: Optional[Email] = None
    status: Optional[Literal["PENDING", "PAID", "PAYMENT_FAILED", "CANCELLED"]] = None
    older_than_seconds: Optional[_whole(0, 10 * 366 * 86400)] = None
    limit: _whole(1, 500) = 50


class ActionReason(RequestModel):
    """Why an operator or admin acts (cancel, refund): kept with the record it changes."""

    reason: Reason


class CancelRequest(ActionReason):
    """Why the admin cancels the order: kept in the order's history."""


# -- stock -----------------------------------------------------------------
def _not_zero(delta):
    if delta == 0:
        raise ValueError("a whole number of units to add (or, negative, remove), not 0")
    return delta


Delta = Annotated[_whole(-1_000_000, 1_000_000), AfterValidator(_not_zero),
                  Field(json_schema_extra={"anyOf": [{"maximum": -1}, {"minimum": 1}]})]
# Product ids as Inventory is given them (a UUID), taken as they are.
StockProductId = _text(max_length=36, line=True, strip=False)


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


class StripeEvent(BaseModel):
    """What Stripe posts to the webhook: trusted for its signature (stripe.Webhook), not for this shape,
    and carrying many more fields than the three the shop reads."""

    id: str
    type: str
    data: dict[str, Any]


REQUEST_MODELS = (Registration, Login, RefreshRequest, LogoutRequest, PasswordChange, ProfileChanges, NewProduct,
                  ProductChanges, NewOrder, CancelRequest, StockAdjustment, StripeEvent)


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
