"""The shop's staff: find, inspect and cancel orders; adjust stock (every call audited as the admin)."""
from flask import Blueprint, request
from nameko.exceptions import RpcTimeout

from shop_common.errors import OrderNotFound, PaymentNotFound, ReservationNotFound
from shop_common.http import api
from web_gateway.auth import admin_required
from web_gateway.edge import json_body
from web_gateway.services import SERVICE_NAMES, gateway, services

blueprint = Blueprint("admin", __name__, url_prefix="/admin")


def side_view(service, method, order_id, unavailable):
    """Another service's view of the order: None if it has none, or if it does not answer within the
    readiness timeout (named in ``unavailable``): an operator looks at stuck orders during outages."""
    try:
        return getattr(getattr(services(quick=True), service), method)(order_id)
    except (OrderNotFound, PaymentNotFound, ReservationNotFound):
        return None
    except RpcTimeout:
        gateway().quick_rpc.discard()
        unavailable.append(SERVICE_NAMES[service])
        return None


def _whole_number(text):
    return int(text) if text and text.isdigit() else text  # anything else: the service names the field


@blueprint.get("/orders")
@admin_required
def find_orders():
    args = request.args
    return {"items": services().orders.find_orders(args.get("email"), args.get("status"),
                                                   _whole_number(args.get("older_than")),
                                                   _whole_number(args.get("limit", "50")))}


@blueprint.get("/orders/<order_id>")
@admin_required
def get_order(order_id):
    """The order with its full history, its payment and its stock reservation."""
    found = services().orders.get_order_with_history(order_id)
    unavailable = []
    return {**found, "payment": side_view("payments", "get_payment", order_id, unavailable),
            "reservation": side_view("inventory", "get_reservation", order_id, unavailable),
            "unavailable": unavailable}


@blueprint.post("/orders/<order_id>/cancel")
@admin_required
def cancel_order(order_id):
    cancel = api.parse(api.CancelRequest, json_body(), "invalid cancel request")
    return services().orders.cancel_order(order_id, cancel.reason)


@blueprint.post("/products/<product_id>/stock")
@admin_required
def adjust_stock(product_id):
    """Add or remove units as a delta (never a new total: a concurrent order is never overwritten)."""
    # The body's shape here (an operator's call takes the same values as arguments); Inventory checks them again.
    change = api.parse(api.StockAdjustment, json_body(), "invalid stock adjustment")
    return services().inventory.adjust_stock(product_id, change.delta, change.reason)


@blueprint.get("/products/<product_id>/stock")
@admin_required
def stock_history(product_id):
    return {"items": services().inventory.stock_history(product_id)}
