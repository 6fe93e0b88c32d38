"""What Inventory reads from operators and shows them."""
from shop_common.http import api


def reservation_view(row):
    return {
        "order_id": row.order_id,
        "state": row.state,
        "items": row.items,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def stock_adjustment(product_id, delta, reason):
    """An operator's stock change -> (product id, a whole non-zero number of units, why)."""
    change = api.parse(api.StockChange, {"product_id": product_id, "delta": delta, "reason": reason},
                       "invalid stock adjustment")
    return change.product_id, change.delta, change.reason


def stock_level(product_id, stock, reason):
    """A stock level to set -> (product id, a whole number of units, 0 or more, why)."""
    level = api.parse(api.StockLevel, {"product_id": product_id, "stock": stock, "reason": reason},
                      "invalid stock level")
    return level.product_id, level.stock, level.reason


def ledger_view(row):
    return {"id": row.id, "product_id": row.product_id, "delta": row.delta, "stock_after": row.stock_after,
            "reason": row.reason, "by": row.actor, "recorded_at": row.recorded_at.isoformat()}
