"""Routes of the public contract (docs/api.md)."""
import json
import logging
import os
from pathlib import Path

import redis
import stripe
from flask import Flask, g, jsonify, request
from flask_swagger_ui import get_swaggerui_blueprint
from nameko.exceptions import RpcTimeout

from shop_common.cache import OrderCache, ProductCache
from shop_common.config import load_config
from shop_common.errors import InvalidCredentials, OrderNotFound, PaymentNotFound, ReservationNotFound
from shop_common.logs import set_order_id
from web_gateway import errors, observability
from web_gateway.auth import LoginThrottle, admin_required, login_required
from web_gateway.errors import ApiError
from web_gateway.openapi import SPEC
from web_gateway.rpc import RpcClients

log = logging.getLogger(__name__)

CONFIG_PATH = Path(__file__).parents[1] / "config.yaml"
MAX_BODY_BYTES = 64 * 1024
INTERNAL_FIELDS = ("user_id",)


def public(order):
    return {key: value for key, value in order.items() if key not in INTERNAL_FIELDS}


def json_body():
    if request.content_length and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", "The request body is too large.")
    body = request.get_json(silent=True)
    if body is None:
        raise ApiError(400, "validation_error", "The body must be JSON (Content-Type: application/json).",
                       {"body": "malformed or missing JSON"})
    if not isinstance(body, dict):
        raise ApiError(400, "validation_error", "The body must be a JSON object.", {"body": "must be an object"})
    return body


def page_args():
    """(page, page_size, q) when they make a cacheable request, else None (the service rejects them)."""
    try:
        page = int(request.args.get("page", 1))
        page_size = int(request.args.get("page_size", 20))
    except ValueError:
        return None
    if not 1 <= page <= 100_000 or not 1 <= page_size <= 100:
        return None
    return page, page_size, request.args.get("q", "").strip()


def from_cache(read, *args):
    """A cache call that never fails a request: with Redis away it is a miss, and nothing is stored."""
    try:
        return read(*args)
    except redis.RedisError as exc:
        log.warning("cache unavailable, serving from the service: %r", exc)
        return None


def create_app(config=None):
    config = config or load_config(os.environ.get("SHOP_GATEWAY_CONFIG", CONFIG_PATH))
    app = Flask(__name__)
    app.config["JWT_SECRET"] = str(config["AUTH"]["jwt_secret"])
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    rpc = RpcClients(config["AMQP_URI"], float(config.get("RPC_TIMEOUT_SECONDS", 10)))
    ready_rpc = RpcClients(config["AMQP_URI"], float(config.get("READY_TIMEOUT_SECONDS", 2)))
    lookup_rpc = RpcClients(config["AMQP_URI"], float(config.get("READY_TIMEOUT_SECONDS", 2)))
    redis_client = redis.Redis.from_url(config["REDIS_URL"], socket_timeout=2, health_check_interval=30)
    product_cache = ProductCache(redis_client)
    order_cache = OrderCache(redis_client)
    login_throttle = LoginThrottle(redis_client)
    errors.register(app)
    observability.instrument(app)

    def admin_call(service, method, *args):
        """An admin's call: the service's audit records the admin's user id."""
        return rpc.call_as(f"admin:{g.user_id}", service, method, *args)

    # -- health ---------------------------------------------------------
    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/ready")
    def ready():
        failing = {}
        try:
            redis_client.ping()
        except Exception as exc:
            failing["redis"] = type(exc).__name__
        for service in config["SERVICES"]:
            try:
                ready_rpc.call(service, "health")
            except Exception as exc:
                ready_rpc.discard()
                failing[service] = type(exc).__name__
        if failing:
            return errors.error_response(503, "unavailable", "Some parts of the shop are not ready.",
                                         {"failing": failing})
        return {"status": "ready"}

    @app.get("/openapi.json")
    def openapi():
        return jsonify(SPEC)

    app.register_blueprint(get_swaggerui_blueprint("/docs", "/openapi.json", config={
        "app_name": "The shop: REST API", "layout": "BaseLayout", "deepLinking": True}))

    # -- Stripe -----------------------------------------------------------
    @app.post("/webhooks/stripe")
    def stripe_webhook():
        """Stripe's events, verified here (signature and age, Stripe's 5-minute tolerance), applied by Payment."""
        secret = (config.get("STRIPE") or {}).get("webhook_secret")
        if not secret:
            raise ApiError(503, "webhooks_disabled", "Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET).")
        payload = request.get_data(cache=False)
        signature = request.headers.get("Stripe-Signature")
        if not signature:
            raise ApiError(400, "invalid_signature", "The Stripe-Signature header is missing.")
        try:
            # What stripe.Webhook.construct_event does, without building an SDK object we would not use.
            stripe.WebhookSignature.verify_header(payload, signature, secret, stripe.Webhook.DEFAULT_TOLERANCE)
            body = json.loads(payload)
        except stripe.SignatureVerificationError:
            raise ApiError(400, "invalid_signature", "The signature does not match, or the event is too old.")
        except ValueError:
            raise ApiError(400, "validation_error", "The body is not a Stripe event.")
        if not isinstance(body, dict):
            raise ApiError(400, "validation_error", "The body is not a Stripe event.")
        result = rpc.call("payment_service", "apply_stripe_event", body)
        return {"received": True, "applied": result["applied"]}

    # -- users ----------------------------------------------------------
    @app.post("/auth/register")
    def register():
        user = rpc.call("user_service", "register", json_body())
        return {"id": user["id"], "email": user["email"], "name": user["name"]}, 201

    @app.post("/auth/login")
    def login():
        body = json_body()
        email = body.get("email")
        login_throttle.check(email)
        try:
            token = rpc.call("user_service", "login", email, body.get("password"))
        except InvalidCredentials:
            login_throttle.failed(email)
            raise
        login_throttle.succeeded(email)
        return token

    @app.get("/users/me")
    @login_required
    def me():
        user = rpc.call("user_service", "get_user", g.user_id)
        return {key: user[key] for key in ("id", "email", "name", "address", "preferences")}

    @app.patch("/users/me")
    @login_required
    def update_me():
        user = rpc.call("user_service", "update_user", g.user_id, json_body())
        return {key: user[key] for key in ("id", "email", "name", "address", "preferences")}

    @app.get("/users/me/notifications")
    @login_required
    def notifications():
        return {"items": rpc.call("order_service", "list_notifications", g.user_id)}

    # -- products -------------------------------------------------------
    @app.get("/products")
    def list_products():
        args = page_args()
        if args is None:  # not cacheable: the service names the bad field (400)
            return rpc.call("product_service", "list_products", request.args.get("page", 1),
                            request.args.get("page_size", 20), request.args.get("q"))
        cached, key = from_cache(product_cache.get_list, *args) or (None, None)
        observability.cache_result("product_list", cached is not None)
        if cached is not None:
            return cached_response(cached, "HIT")
        result = rpc.call("product_service", "list_products", *args)
        if key:
            from_cache(product_cache.fill, key, result)
        return cached_response(result, "MISS")

    @app.get("/products/<product_id>")
    def get_product(product_id):
        cached, key = from_cache(product_cache.get_product, product_id) or (None, None)
        observability.cache_result("product", cached is not None)
        if cached is not None:
            return cached_response(cached, "HIT")
        product = rpc.call("product_service", "get_product", product_id)
        if key:
            from_cache(product_cache.fill, key, product)
        return cached_response(product, "MISS")

    @app.post("/products")
    @admin_required
    def create_product():
        return admin_call("product_service", "create_product", json_body()), 201

    @app.patch("/products/<product_id>")
    @admin_required
    def update_product(product_id):
        return admin_call("product_service", "update_product", product_id, json_body())

    # -- orders ---------------------------------------------------------
    @app.post("/orders")
    @login_required
    def place_order():
        result = rpc.call("order_service", "place_order", g.user_id, json_body(),
                          request.headers.get("Idempotency-Key"))
        set_order_id(result["order"]["id"])
        return public(result["order"]), 202 if result["created"] else 200

    @app.get("/orders/<order_id>")
    @login_required
    def get_order(order_id):
        cached = from_cache(order_cache.get, order_id)
        hit = cached is not None and cached.get("user_id") == g.user_id
        observability.cache_result("order", hit)
        if hit:
            return public(cached)
        return public(rpc.call("order_service", "get_order", order_id, g.user_id))

    @app.get("/orders")
    @login_required
    def list_orders():
        return {"items": [public(order) for order in rpc.call("order_service", "list_orders", g.user_id)]}

    # -- admin ----------------------------------------------------------
    def side_view(service, method, order_id, unavailable):
        """Another service's view of the order: None if it has none, or if it does not answer within the
        readiness timeout (named in ``unavailable``): an operator looks at stuck orders during outages."""
        try:
            return lookup_rpc.call_as(f"admin:{g.user_id}", service, method, order_id)
        except (OrderNotFound, PaymentNotFound, ReservationNotFound):
            return None
        except RpcTimeout:
            lookup_rpc.discard()
            unavailable.append(service)
            return None

    @app.get("/admin/orders")
    @admin_required
    def admin_find_orders():
        args = request.args
        older_than = args.get("older_than")
        limit = args.get("limit", "50")
        found = admin_call("order_service", "find_orders", args.get("email"), args.get("status"),
                           int(older_than) if older_than and older_than.isdigit() else older_than,
                           int(limit) if limit.isdigit() else limit)
        return {"items": found}

    @app.get("/admin/orders/<order_id>")
    @admin_required
    def admin_get_order(order_id):
        """The order with its full history, its payment and its stock reservation."""
        found = admin_call("order_service", "get_order_with_history", order_id)
        unavailable = []
        return {**found, "payment": side_view("payment_service", "get_payment", order_id, unavailable),
                "reservation": side_view("inventory_service", "get_reservation", order_id, unavailable),
                "unavailable": unavailable}

    @app.post("/admin/orders/<order_id>/cancel")
    @admin_required
    def admin_cancel_order(order_id):
        return admin_call("order_service", "cancel_order", order_id, json_body().get("reason"))

    @app.post("/admin/products/<product_id>/stock")
    @admin_required
    def admin_adjust_stock(product_id):
        """Add or remove units as a delta (never a new total: a concurrent order is never overwritten)."""
        body = json_body()
        return admin_call("inventory_service", "adjust_stock", product_id, body.get("delta"), body.get("reason"))

    @app.get("/admin/products/<product_id>/stock")
    @admin_required
    def admin_stock_history(product_id):
        return {"items": admin_call("inventory_service", "stock_history", product_id)}

    return app


def cached_response(body, cache_state):
    response = jsonify(body)
    response.headers["X-Cache"] = cache_state
    return response
