"""Validation of product input and the product's public shape."""
import re

from shop_common.errors import ValidationError
from shop_common.money import DEFAULT_CURRENCY, check_currency, format_amount, parse_amount

MAX_PAGE_SIZE = 100
MAX_PAGE = 100_000
SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # fullmatch: "$" would let a newline through


def product_view(row):
    return {
        "id": row.id,
        "sku": row.sku,
        "name": row.name,
        "description": row.description,
        "price": format_amount(row.price_cents, row.currency),
        "currency": row.currency,
        "stock": row.stock,
        "active": row.active,
    }


def _text(data, field, errors, max_len, required):
    value = data.get(field)
    if value is None:
        if required:
            errors[field] = "is required"
        return None
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > max_len:
        errors[field] = f"must be a non-empty string of at most {max_len} characters"
        return None
    return value.strip() if field != "description" else value


def _stock(data, errors, required):
    value = data.get("stock")
    if value is None:
        if required:
            errors["stock"] = "is required"
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 1_000_000_000:
        errors["stock"] = "must be a whole number, 0 or more"
        return None
    return value


def _price(data, currency, errors, required):
    if data.get("price") is None:
        if required:
            errors["price"] = "is required"
        return None
    if currency is None:
        return None  # the currency's own error says why
    try:
        return parse_amount(data["price"], currency, "price")
    except ValidationError as exc:
        errors.update(exc.details)
        return None


def _object(data):
    if not isinstance(data, dict):
        raise ValidationError("body must be a JSON object", {"body": "must be an object"})


def _currency(data, errors):
    try:
        return check_currency(data.get("currency", DEFAULT_CURRENCY))
    except ValidationError as exc:
        errors.update(exc.details)
        return None


def new_product(data):
    _object(data)
    errors = {}
    currency = _currency(data, errors)
    fields = {
        "sku": _text(data, "sku", errors, 64, True),
        "name": _text(data, "name", errors, 200, True),
        "description": _text(data, "description", errors, 5000, False) or "",
        "price_cents": _price(data, currency, errors, True),
        "currency": currency,
        "stock": _stock(data, errors, True),
    }
    if fields["sku"] and not SKU.fullmatch(fields["sku"]):
        errors["sku"] = "letters, digits, '.', '_' and '-' only"
    if errors:
        raise ValidationError("invalid product", errors)
    return fields


def product_changes(data, currency):
    """The changes asked for a product priced in ``currency`` (which never changes)."""
    _object(data)
    errors = {}
    unknown = set(data) - {"name", "description", "price", "stock", "active"}
    for field in unknown:
        errors[field] = "cannot be changed"
    changes = {
        "name": _text(data, "name", errors, 200, False),
        "description": _text(data, "description", errors, 5000, False),
        "price_cents": _price(data, currency, errors, False),
        "stock": _stock(data, errors, False),
        "active": data.get("active"),
    }
    if changes["active"] is not None and not isinstance(changes["active"], bool):
        errors["active"] = "true to show the product in the catalogue, false to hide it"
    if errors:
        raise ValidationError("invalid product change", errors)
    changes = {key: value for key, value in changes.items() if value is not None}
    if not changes:
        raise ValidationError("nothing to change", {"body": "give at least one of name, description, price, stock, active"})
    return changes


def page_request(page, page_size, query):
    errors = {}
    try:
        page = int(page)
        if not 1 <= page <= MAX_PAGE:
            raise ValueError
    except (TypeError, ValueError):
        errors["page"] = f"must be a whole number from 1 to {MAX_PAGE}"
    try:
        page_size = int(page_size)
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError
    except (TypeError, ValueError):
        errors["page_size"] = f"must be a whole number from 1 to {MAX_PAGE_SIZE}"
    if query is not None and (not isinstance(query, str) or len(query) > 100):
        errors["q"] = "must be at most 100 characters"
    if errors:
        raise ValidationError("invalid page request", errors)
    return page, page_size, (query or "").strip()


def order_lines(items):
    """[{product_id, quantity}] as checked by the availability check."""
    if not isinstance(items, list) or not items:
        raise ValidationError("items must be a non-empty list", {"items": "must be a non-empty list"})
    lines = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("product_id"), str):
            raise ValidationError("invalid item", {f"items[{index}].product_id": "is required"})
        quantity = item.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise ValidationError("invalid item", {f"items[{index}].quantity": "must be 1 or more"})
        lines.append((item["product_id"], quantity))
    return lines
