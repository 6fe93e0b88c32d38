"""The one strict layer every request passes before a route sees it, and the headers every answer gets.

Input: JSON bodies are parsed here (NaN and Infinity refused, nesting bounded),
and no string anywhere (body, body keys, path parameters, query) may carry a
control character or a lone surrogate. Each refusal is a 400
``validation_error`` naming the field, before any service is called.

Output: ``X-Request-Id`` (the trace id, also on every log line), ``nosniff``,
and ``Cache-Control: no-store`` on anything answered to a bearer token.
"""
import json
import re

from flask import g, request
from opentelemetry import trace

from shop_common.http import api
from web_gateway.errors import ApiError

MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16
# One definition with the request models' JSON Schema (shop_common.http.api): free text may hold lines,
# identifiers and query values are one line.
BODY_FORBIDDEN = re.compile(f"[{api.CONTROL}\ud800-\udfff]")
PARAMETER_FORBIDDEN = re.compile(f"[{api.LINE_CONTROL}\ud800-\udfff]")


def refuse(field, problem):
    raise ApiError(400, "validation_error", "invalid request", {field: problem})


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def json_body():
    """The request's JSON object, checked as the module doc says (parsed once per request)."""
    if "json_body" in g:
        return g.json_body
    if request.content_length and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", "The request body is too large.")
    if not request.is_json:
        refuse("body", "send JSON with Content-Type: application/json")
    try:
        body = json.loads(request.get_data(cache=True), parse_constant=_refuse_constant)
    except RecursionError:
        refuse("body", f"nested deeper than {MAX_JSON_DEPTH} levels")
    except ValueError:  # includes UnicodeDecodeError and NaN/Infinity
        refuse("body", "malformed JSON")
    if not isinstance(body, dict):
        refuse("body", "must be a JSON object")
    check_json(body)
    g.json_body = body
    return body


def check_json(document):
    """Walk without recursion: depth and every string (keys too) checked, the field named as in errors."""
    pending = [(document, "", 1)]
    while pending:
        value, path, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            refuse(path or "body", f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                field = f"{path}.{key}" if path else key
                if BODY_FORBIDDEN.search(key):
                    refuse(repr(field), "field names must not contain control characters")
                pending.append((item, field, depth + 1))
        elif isinstance(value, list):
            pending.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(value))
        elif isinstance(value, str) and BODY_FORBIDDEN.search(value):
            refuse(path, "must not contain control characters")


def check_parameters():
    """Path parameters and the query string: one line of printable text each."""
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and PARAMETER_FORBIDDEN.search(value):
            refuse(name, "must not contain control characters")
    key = request.headers.get("Idempotency-Key")
    if key is not None and PARAMETER_FORBIDDEN.search(key):
        refuse("Idempotency-Key", "must not contain control characters")
    for name, value in request.args.items(multi=True):
        if PARAMETER_FORBIDDEN.search(name) or PARAMETER_FORBIDDEN.search(value):
            refuse(name if not PARAMETER_FORBIDDEN.search(name) else "query", "must not contain control characters")


def response_headers(response):
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        response.headers["X-Request-Id"] = format(context.trace_id, "032x")
    response.headers["X-Content-Type-Options"] = "nosniff"
    if "Authorization" in request.headers:
        response.headers["Cache-Control"] = "no-store"
    return response


def install(app):
    app.before_request(check_parameters)
    app.after_request(response_headers)
