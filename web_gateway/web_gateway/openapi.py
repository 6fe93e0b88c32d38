"""The public contract as OpenAPI 3.1, served at GET /openapi.json.

Request bodies are the models the services validate with (``shop_common.http.api``), and
responses the models of what they answer (``shop_common.http.responses``), taken as their JSON
Schema: the document cannot promise what the server refuses, and the fuzzing tests check
every live answer against it. This module adds only the routes.
"""
from shop_common.http import api, responses
from web_gateway.errors import HTTP_ERRORS


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema):
    return {"content": {"application/json": {"schema": schema}}}


def _op(summary, responses, body=None, auth=False, params=()):
    if params or body:  # the edge refuses control characters in any of them (web_gateway.edge)
        responses = {400: ERROR, **responses}
    if any(param["in"] == "query" for param in params):
        responses = {**responses, 414: URI_TOO_LONG}
    operation = {"summary": summary, "responses": {
        str(status): dict(description=HTTP_ERRORS.get(status, text) if text == "error" else text,
                          **(_json(_ref(schema)) if schema else {}))
        for status, (text, schema) in responses.items()
    }}
    if body:
        operation["requestBody"] = dict(required=True, **_json(_ref(body)))
    if auth:
        operation["security"] = [{"bearer": []}]
    if params:
        operation["parameters"] = list(params)
    return operation


def _param(name, where="path", schema=None):
    text = {"type": "string", "pattern": ONE_LINE, **({"minLength": 1} if where == "path" else {})}
    return {"name": name, "in": where, "required": where == "path", "schema": schema or text}


def _field(model, name):
    """One field's JSON Schema as a parameter takes it (absent rather than null)."""
    schema = dict(model.model_json_schema()["properties"][name])
    for option in schema.pop("anyOf", ()):
        if option.get("type") != "null":
            schema.update(option)
    return {key: value for key, value in schema.items() if key not in ("title", "default")}


def _query(model):
    """A query's parameters from the model that checks it (shop_common.http.api)."""
    return [_param(name, "query", _field(model, name)) for name in model.model_fields]


ONE_LINE = rf"^[^{api.LINE_CONTROL}]*$"
ERROR = ("error", "Error")
# Answered by gunicorn itself (limit_request_line, 4094 bytes), before the application: no JSON body.
URI_TOO_LONG = ("the request line is longer than 4094 bytes", None)
RATE_LIMITED = ("rate_limited: too many attempts from this client or account; wait Retry-After seconds", "Error")

SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "The shop", "version": "1.2.0"},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        "schemas": {},  # the request and response models' JSON Schema, below
    },
    "paths": {
        "/health": {"get": _op("The gateway process serves", {200: ("ok", "Status")})},
        "/ready": {"get": _op("Redis and every service answer", {200: ("ready", "Status"),
                                                                  503: ("a part is failing", "Error")})},
        "/auth/register": {"post": _op("Create an account", {201: ("created", "UserSummary"), 400: ERROR,
                                                             409: ("email_taken", "Error"), 429: RATE_LIMITED},
                                       body="Registration")},
        "/auth/login": {"post": _op("Get an access token (minutes) and a refresh token (a session)",
                                    {200: ("tokens", "Token"), 400: ERROR, 401: ("invalid_credentials", "Error"),
                                     429: RATE_LIMITED}, body="Login")},
        "/auth/refresh": {"post": _op(
            "The next access and refresh tokens; the refresh token given is used up (a reused one ends the session)",
            {200: ("tokens", "Token"), 400: ERROR, 401: ("invalid_refresh_token", "Error"), 429: RATE_LIMITED},
            body="RefreshRequest")},
        "/auth/logout": {"post": _op(
            "End this session (refresh_token), or every session and every access token (everywhere)",
            {200: ("logged out", "LoggedOut"), 400: ERROR, 401: ERROR}, body="LogoutRequest", auth=True)},
        "/users/me/password": {"post": _op(
            "Change the password: every session and access token ends, the answer is a new session",
            {200: ("tokens", "Token"), 400: ERROR, 401: ("unauthorized, or invalid_credentials: the current "
                                                          "password is wrong", "Error"), 429: RATE_LIMITED},
            body="PasswordChange", auth=True)},
        "/users/me": {
            "get": _op("The caller's profile", {200: ("user", "User"), 401: ERROR}, auth=True),
            "patch": _op("Change name, address or preferences", {200: ("user", "User"), 400: ERROR, 401: ERROR},
                         body="ProfileChanges", auth=True),
        },
        "/users/me/notifications": {"get": _op("Order outcomes, newest first",
                                               {200: ("notifications", "Notifications"), 401: ERROR}, auth=True)},
        "/products": {
            "get": _op("A page of the catalog (X-Cache: HIT or MISS)", {200: ("page", "ProductPage"), 400: ERROR},
                       params=_query(api.PageQuery)),
            "post": _op("Add a product (admin)", {201: ("created", "Product"), 400: ERROR, 401: ERROR,
                                                 403: ("forbidden", "Error"), 409: ("sku_taken", "Error")},
                        body="NewProduct", auth=True),
        },
        "/products/{product_id}": {
            "get": _op("One product (X-Cache: HIT or MISS)", {200: ("product", "Product"),
                                                              404: ("product_not_found", "Error")},
                       params=[_param("product_id")]),
            "patch": _op("Change a product (admin)", {200: ("product", "Product"), 400: ERROR, 401: ERROR,
                                                     403: ("forbidden", "Error"), 404: ERROR},
                         body="ProductChanges", auth=True, params=[_param("product_id")]),
        },
        "/orders": {
            "post": _op("Place an order (optional Idempotency-Key header)",
                        {202: ("accepted, PENDING", "Order"), 200: ("the order of this Idempotency-Key", "Order"),
                         400: ERROR, 401: ERROR, 404: ("product_not_found", "Error"),
                         409: ("insufficient_stock", "Error"),
                         422: ("idempotency_key_reused: the key placed an order with another request", "Error"),
                         429: RATE_LIMITED},
                        body="NewOrder", auth=True, params=[_param("Idempotency-Key", "header", {
                            "type": "string", "minLength": 1, "maxLength": 200, "pattern": ONE_LINE})]),
            "get": _op("The caller's orders, newest first", {200: ("orders", "Orders"), 401: ERROR}, auth=True),
        },
        "/admin/orders": {"get": _op(
            "Orders newest first, for the shop's staff (admin)", {200: ("orders", "Orders"), 400: ERROR, 401: ERROR,
                                                                  403: ("forbidden", "Error")},
            auth=True, params=[_param("status", "query", _field(api.OrderSearch, "status")),
                               _param("older_than", "query", _field(api.OrderSearch, "older_than_seconds")),
                               _param("email", "query", _field(api.OrderSearch, "email")),
                               _param("limit", "query", _field(api.OrderSearch, "limit"))])},
        "/admin/orders/{order_id}": {"get": _op(
            "An order with its full history, payment and reservation (admin)",
            {200: ("order", "AdminOrder"), 401: ERROR, 403: ("forbidden", "Error"), 404: ("order_not_found", "Error")},
            auth=True, params=[_param("order_id")])},
        "/admin/orders/{order_id}/cancel": {"post": _op(
            "Cancel a PENDING order: stock comes back, any charge is refunded, the customer is told (admin)",
            {200: ("cancelled", "Order"), 400: ERROR, 401: ERROR, 403: ("forbidden", "Error"),
             404: ("order_not_found", "Error"), 409: ("illegal_transition: the order is final", "Error")},
            body="CancelRequest", auth=True, params=[_param("order_id")])},
        "/admin/products/{product_id}/stock": {
            "post": _op("Add or remove stock as a delta, never below zero, with a reason (admin)",
                        {200: ("the ledger entry", "StockEntry"), 400: ERROR, 401: ERROR, 403: ("forbidden", "Error"),
                         404: ("product_not_found", "Error"), 409: ("insufficient_stock", "Error")},
                        body="StockAdjustment", auth=True, params=[_param("product_id")]),
            "get": _op("The product's stock adjustments, newest first (admin)",
                       {200: ("ledger", "StockLedger"), 401: ERROR, 403: ("forbidden", "Error")},
                       auth=True, params=[_param("product_id")]),
        },
        "/webhooks/stripe": {"post": _op(
            "Stripe's events (signed: Stripe-Signature header; no JWT); each event id is applied once",
            {200: ("received", "WebhookReceipt"), 400: ("invalid_signature or validation_error", "Error"),
             503: ("webhooks_disabled, or busy: Stripe delivers it again", "Error")},
            body="StripeEvent", params=[_param("Stripe-Signature", "header")])},
        "/orders/{order_id}": {"get": _op("One of the caller's orders (X-Cache: HIT or MISS)", {
            200: ("order", "Order"), 401: ERROR, 404: ("order_not_found", "Error")},
            auth=True, params=[_param("order_id")])},
    },
}


def _schemas(models):
    """Each model's JSON Schema, and the models it nests, as OpenAPI components."""
    schemas = {}
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _without_response_noise(schema):
    """A response model's schema without what pydantic adds for Python's sake: titles, and the
    ``default: null`` of a field an answer may leave out (it is never null unless its type says so)."""
    if isinstance(schema, dict):
        return {key: _without_response_noise(value) for key, value in schema.items()
                if key != "title" and not (key == "default" and value is None)}
    if isinstance(schema, list):
        return [_without_response_noise(value) for value in schema]
    return schema


_requests = _schemas(api.REQUEST_MODELS)
_responses = {name: _without_response_noise(schema) for name, schema in _schemas(responses.RESPONSE_MODELS).items()}
assert not set(_requests) & set(_responses), "a request and a response model share a name"
SPEC["components"]["schemas"].update(_responses)
SPEC["components"]["schemas"].update(_requests)

OPERATIONS_BEGIN = "<!-- operations: generated by `make contracts` from /openapi.json; do not edit by hand -->"
OPERATIONS_END = "<!-- end of operations -->"


def _body_fields(schema_name):
    schema = SPEC["components"]["schemas"][schema_name]
    required = set(schema.get("required", ()))
    return ", ".join(f"`{name}`" + ("" if name in required else "?") for name in schema.get("properties", {}))


def operations_markdown():
    """Every operation of the document as the contract's reference list (docs/api.md)."""
    lines = [OPERATIONS_BEGIN, ""]
    for path, operations in SPEC["paths"].items():
        for method, operation in operations.items():
            lines.append(f"### `{method.upper()} {path}`")
            lines.append("")
            lines.append(operation["summary"] + (" (bearer token)" if operation.get("security") else "") + ".")
            lines.append("")
            body = operation.get("requestBody")
            if body:
                name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
                lines.append(f"- Body `{name}`: {_body_fields(name)} (`?`: optional)")
            for parameter in operation.get("parameters", ()):
                lines.append(f"- {parameter['in'].capitalize()} `{parameter['name']}`"
                             + (" (required)" if parameter.get("required") else ""))
            for status, response in operation["responses"].items():
                lines.append(f"- `{status}` {response['description']}")
            lines.append("")
    lines.append(OPERATIONS_END)
    return "\n".join(lines) + "\n"


def write_docs(path):
    """Replace the generated part of ``path`` (between the markers) with the current operations."""
    text = path.read_text()
    start, end = text.index(OPERATIONS_BEGIN), text.index(OPERATIONS_END) + len(OPERATIONS_END) + 1
    path.write_text(text[:start] + operations_markdown() + text[end:])


if __name__ == "__main__":
    import sys
    from pathlib import Path

    write_docs(Path(sys.argv[1]))
