"""A shopper's orders: placed through the Order service, read from Redis when cached."""
from flask import Blueprint, g, request

from shop_common.http.responses import public_order
from shop_common.storage.cache import encode
from shop_common.telemetry.logs import set_order_id
from web_gateway import observability
from web_gateway.auth import login_required
from web_gateway.edge import json_body
from web_gateway.routes.requests import cached_response, from_cache
from web_gateway.services import gateway, services
from web_gateway.throttling import account_of_caller, limiter, limits_of

blueprint = Blueprint("orders", __name__)


@blueprint.post("/orders")
@login_required
# Below login_required, so the account is known (Flask-Limiter checks where its innermost decorator runs).
@limiter.limit(limits_of("orders_per_account"), key_func=account_of_caller)
@limiter.limit(limits_of("orders_per_client"))
def place_order():
    result = services().orders.place_order(g.user_id, json_body(), request.headers.get("Idempotency-Key"))
    set_order_id(result["order"]["id"])
    return public_order(result["order"]), 202 if result["created"] else 200


@blueprint.get("/orders/<order_id>")
@login_required
def get_order(order_id):
    # Another shopper's order is a miss here, and the Order service answers 404.
    cached = from_cache(gateway().order_cache.get, order_id, g.user_id)
    observability.cache_result("order", cached is not None)
    if cached is not None:
        return cached_response(cached, "HIT")
    return cached_response(encode(public_order(services().orders.get_order(order_id, g.user_id))), "MISS")


@blueprint.get("/orders")
@login_required
def list_orders():
    return {"items": [public_order(order) for order in services().orders.list_orders(g.user_id)]}
