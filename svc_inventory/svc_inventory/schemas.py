"""What Inventory reads from operators and shows them."""
from shop_common.errors import ValidationError


def reservation_view(row):
    return {
        "order_id": row.order_id,
        "state": row.state,
        "items": row.items,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def stock_adjustment(product_id, delta):
    """An operator's stock change: a product id and a whole, non-zero number of units."""
    errors = {}
    if not isinstance(product_id, str) or not 0 < len(product_id) <= 36:
        errors["product_id"] = "a product id"
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0 or abs(delta) > 1_000_000:
        errors["delta"] = "a whole number of units to add (or, negative, remove), not 0"
    if errors:
        raise ValidationError("invalid stock adjustment", errors)
    return product_id, delta


def stock_level(product_id, stock):
    """A stock level to set: a product id and a whole number of units, 0 or more."""
    errors = {}
    if not isinstance(product_id, str) or not 0 < len(product_id) <= 36:
        errors["product_id"] = "a product id"
    if isinstance(stock, bool) or not isinstance(stock, int) or not 0 <= stock <= 1_000_000_000:
        errors["stock"] = "a whole number of units, 0 or more"
    if errors:
        raise ValidationError("invalid stock level", errors)
    return product_id, stock


def ledger_view(row):
    return {"id": row.id, "product_id": row.product_id, "delta": row.delta, "stock_after": row.stock_after,
            "reason": row.reason, "by": row.actor, "recorded_at": row.recorded_at.isoformat()}
