"""Validation of product input and the product's public shape."""
from shop_common.http import api
from shop_common.money import format_amount, parse_amount


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


def product_change_view(row):
    return {"id": row.id, "product_id": row.product_id, "action": row.action, "by": row.changed_by,
            "before": row.before, "after": row.after, "recorded_at": row.recorded_at.isoformat()}


def new_product(data):
    product = api.parse(api.NewProduct, data, "invalid product")
    return {"sku": product.sku, "name": product.name, "description": product.description,
            "price_cents": parse_amount(product.price, product.currency), "currency": product.currency,
            "stock": product.stock}


def product_changes(data, currency):
    """The changes asked for a product priced in ``currency`` (which never changes)."""
    changes = api.parse(api.ProductChanges, data, "invalid product change", currency=currency)
    changes = changes.model_dump(exclude_unset=True)
    if "price" in changes:
        changes["price_cents"] = parse_amount(changes.pop("price"), currency)
    return changes


def page_request(page, page_size, query):
    request = api.parse(api.PageQuery, {"page": page, "page_size": page_size, "q": query}, "invalid page request")
    return request.page, request.page_size, request.q or ""


def order_lines(items):
    """[(product_id, quantity)] as the availability check reads them."""
    check = api.parse(api.AvailabilityCheck, {"items": items}, "invalid availability check")
    return [(line.product_id, line.quantity) for line in check.items]
