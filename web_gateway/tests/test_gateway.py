"""The gateway's routes and its one error table, with RPC replaced and a real Redis."""
import json
import time

import jwt
import redis
from nameko.exceptions import RemoteError, RpcTimeout

from shop_common import errors

from web_gateway.app import create_app
from web_gateway.tests.conftest import REDIS_URL, app_config, auth

def remote(exc_type, message, details=None):
    """What a service's domain error is at the gateway: the catalogue's class (it crosses RPC as itself)."""
    return getattr(errors, exc_type)(message, details)


def test_domain_errors_map_to_status_and_code(client, calls):
    answers, _ = calls
    answers[("order_service", "place_order")] = remote("InsufficientStock", "only 1 left", {"product_id": "p1"})
    response = client.post("/orders", json={"items": [], "payment_method": "pm"}, headers=auth())
    assert response.status_code == 409
    assert response.json == {"error": {"code": "insufficient_stock", "message": "only 1 left",
                                       "details": {"product_id": "p1"}}}


def test_an_error_outside_the_catalogue_is_a_500_with_only_a_correlation_id(client, calls, caplog):
    answers, _ = calls
    answers[("user_service", "get_user")] = RemoteError("ZeroDivisionError", "division by zero")
    response = client.get("/users/me", headers=auth())
    assert response.status_code == 500
    body = response.json
    correlation_id = body["error"].pop("correlation_id")
    assert body == {"error": {"code": "internal_error", "message": "Something went wrong on our side."}}
    logged = [record.getMessage() for record in caplog.records if correlation_id in record.getMessage()]
    assert logged and "division by zero" in logged[0]  # the operator finds the cause by the id


def test_rpc_timeout_is_503(client, calls):
    answers, _ = calls
    answers[("order_service", "list_orders")] = RpcTimeout()
    response = client.get("/orders", headers=auth())
    assert response.status_code == 503 and response.json["error"]["code"] == "unavailable"


def test_tokens_are_checked_before_any_rpc(client, calls):
    _, seen = calls
    assert client.get("/orders").status_code == 401
    assert client.get("/orders", headers={"Authorization": "Bearer nope"}).status_code == 401
    expired = client.get("/orders", headers=auth(ttl=-10))
    assert expired.status_code == 401 and "expired" in expired.json["error"]["message"]
    forged = jwt.encode({"sub": "u1", "role": "admin", "iss": "shop", "exp": int(time.time()) + 60}, "another-secret-that-is-long-enough-0123",
                        algorithm="HS256")
    assert client.post("/products", json={}, headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert client.post("/products", json={}, headers=auth("customer")).status_code == 403
    assert seen == []


def test_a_token_accepted_before_is_refused_once_it_has_expired(client, calls):
    """Verified tokens are remembered (web_gateway.auth._verified); their expiry is checked on every request."""
    answers, _ = calls
    answers[("order_service", "list_orders")] = []
    headers = auth(ttl=2)
    expires_at = jwt.decode(headers["Authorization"][7:], options={"verify_signature": False})["exp"]
    assert client.get("/orders", headers=headers).status_code == 200
    assert client.get("/orders", headers=headers).status_code == 200
    time.sleep(max(expires_at - time.time(), 0) + 0.05)
    expired = client.get("/orders", headers=headers)
    assert expired.status_code == 401 and "expired" in expired.json["error"]["message"]


def test_bodies_must_be_json_objects(client, calls):
    bad = client.post("/auth/login", data="{nope", content_type="application/json")
    assert bad.status_code == 400 and bad.json["error"]["code"] == "validation_error"
    array = client.post("/auth/login", json=[1, 2])
    assert array.status_code == 400


def test_unknown_paths_and_methods_are_json(client):
    assert client.get("/nope").json["error"]["code"] == "not_found"
    wrong_method = client.delete("/products")
    assert wrong_method.status_code == 405 and wrong_method.json["error"]["code"] == "method_not_allowed"


def test_product_list_miss_then_hit(client, calls):
    answers, seen = calls
    page = {"items": [], "page": 1, "page_size": 20, "total": 0}
    answers[("product_service", "list_products")] = page
    first = client.get("/products")
    second = client.get("/products")
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert second.json == page
    assert seen == [("product_service", "list_products", (1, 20, ""))]


def test_order_cache_is_only_served_to_its_owner(client, calls):
    answers, seen = calls
    order = {"id": "o1", "user_id": "u1", "status": "PAID"}
    answers[("order_service", "get_order")] = remote("OrderNotFound", "order not found", {"order_id": "o1"})
    from shop_common.storage.cache import OrderCache
    OrderCache(redis.Redis.from_url(REDIS_URL)).put(order, 2)

    mine = client.get("/orders/o1", headers=auth(user_id="u1"))
    assert mine.status_code == 200 and mine.json == {"id": "o1", "status": "PAID"}
    assert mine.headers["X-Cache"] == "HIT" and seen == []
    theirs = client.get("/orders/o1", headers=auth(user_id="u2"))
    assert theirs.status_code == 404 and theirs.json["error"]["code"] == "order_not_found"


def test_order_cache_never_goes_back_to_an_older_version():
    from shop_common.storage.cache import OrderCache

    cache = OrderCache(redis.Redis.from_url(REDIS_URL))
    assert cache.put({"id": "ov", "user_id": "u1", "status": "PAID"}, 3)
    assert not cache.put({"id": "ov", "user_id": "u1", "status": "PENDING"}, 1)
    assert json.loads(cache.get("ov", "u1")) == {"id": "ov", "status": "PAID"}  # as answered: no owner in it
    assert cache.get("ov", "u2") is None


def test_an_order_id_does_not_outlive_its_request_in_the_logs(client, calls):
    from shop_common.telemetry import logs

    answers, _ = calls
    answers[("order_service", "get_order")] = {"id": "o9", "user_id": "u1", "status": "PAID"}
    client.get("/orders/o9", headers=auth(user_id="u1"))
    assert logs._order_id.get() == "o9"  # the test client runs the app in this thread
    client.get("/health")
    assert logs._order_id.get() is None


def test_with_redis_away_reads_come_from_the_services_and_login_is_refused_not_guessed(calls):
    """A port where nothing listens stands for Redis down: caches become misses, never 500s."""
    answers, seen = calls
    app = create_app(app_config(REDIS_URL="redis://127.0.0.1:9/0"))
    client = app.test_client()
    answers[("product_service", "get_product")] = {"id": "p1", "stock": 3}
    answers[("product_service", "list_products")] = {"items": [], "page": 1}
    answers[("order_service", "get_order")] = {"id": "o1", "user_id": "u1", "status": "PAID"}
    product = client.get("/products/p1")
    assert product.status_code == 200 and product.headers["X-Cache"] == "MISS"
    assert client.get("/products").status_code == 200
    order = client.get("/orders/o1", headers=auth())
    assert order.status_code == 200 and order.json == {"id": "o1", "status": "PAID"}
    assert order.headers["X-Cache"] == "MISS"
    assert [call[:2] for call in seen] == [("product_service", "get_product"), ("product_service", "list_products"),
                                           ("order_service", "get_order")]
    login = client.post("/auth/login", json={"email": "a@example.com", "password": "x"})
    assert login.status_code == 503 and login.json["error"]["code"] == "unavailable"


def test_the_openapi_document_is_valid_and_its_request_bodies_are_the_models_the_services_use(client):
    from openapi_spec_validator import validate

    from shop_common.http import api

    spec = client.get("/openapi.json").json
    validate(spec)  # OpenAPI 3.1, every $ref resolves
    assert spec["openapi"] == "3.1.0"
    bodies = {operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
              for path in spec["paths"].values() for operation in path.values() if "requestBody" in operation}
    assert {model.__name__ for model in api.REQUEST_MODELS} <= bodies  # each model is some route's body
    for model in api.REQUEST_MODELS:
        own = model.model_json_schema(ref_template="#/components/schemas/{model}")
        own.pop("$defs", None)
        assert spec["components"]["schemas"][model.__name__] == own


def test_every_answer_of_the_openapi_document_is_a_response_model(client):
    """Response bodies come from shop_common.http.responses, and every model there answers some route."""
    from shop_common.http import responses

    spec = client.get("/openapi.json").json
    answered = {response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
                for path in spec["paths"].values() for operation in path.values()
                for response in operation["responses"].values() if "content" in response}
    assert answered == {model.__name__ for model in responses.RESPONSE_MODELS}
    for model in responses.RESPONSE_MODELS:
        schema = spec["components"]["schemas"][model.__name__]
        assert set(schema["properties"]) == set(model.model_fields)
        assert set(schema.get("required", ())) == {name for name, field in model.model_fields.items()
                                                   if field.is_required()}


def test_the_contract_document_lists_every_operation_of_the_openapi_document():
    from pathlib import Path

    from web_gateway.openapi import OPERATIONS_BEGIN, OPERATIONS_END, operations_markdown

    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    listed = text[text.index(OPERATIONS_BEGIN):text.index(OPERATIONS_END) + len(OPERATIONS_END) + 1]
    assert listed == operations_markdown(), "the OpenAPI document changed: run `make contracts`"


def test_a_token_older_than_its_user_s_logout_everywhere_is_refused(client, calls):
    from shop_common.storage.cache import TokenVersions

    answers, _ = calls
    answers[("order_service", "list_orders")] = []
    answers[("user_service", "logout")] = {"logged_out": True, "everywhere": True}
    before = auth(user_id="u7")  # no "ver" claim: older than any revocation
    assert client.get("/orders", headers=before).status_code == 200
    TokenVersions(redis.Redis.from_url(REDIS_URL)).publish("u7", 2, ttl_seconds=60)
    refused = client.get("/orders", headers=before)
    assert refused.status_code == 401 and "revoked" in refused.json["error"]["message"]
    assert client.get("/orders", headers=auth(user_id="u8")).status_code == 200  # other users are untouched
    logout = client.post("/auth/logout", json={"everywhere": True}, headers=auth(user_id="u8"))
    assert logout.status_code == 200
