"""What every route reads from a request, and shapes its answers with."""
import logging

import redis
from flask import jsonify, request

from web_gateway.errors import ApiError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
INTERNAL_FIELDS = ("user_id",)


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


def public(order):
    return {key: value for key, value in order.items() if key not in INTERNAL_FIELDS}


def from_cache(read, *args):
    """A cache call that never fails a request: with Redis away it is a miss, and nothing is stored."""
    try:
        return read(*args)
    except redis.RedisError as exc:
        log.warning("cache unavailable, serving from the service: %r", exc)
        return None


def cached_response(body, cache_state):
    response = jsonify(body)
    response.headers["X-Cache"] = cache_state
    return response
