"""What every route reads from a request, and shapes its answers with."""
import logging

import redis
from flask import Response

log = logging.getLogger(__name__)


def from_cache(read, *args):
    """A cache call that never fails a request: with Redis away it is a miss, and nothing is stored."""
    try:
        return read(*args)
    except redis.RedisError as exc:
        log.warning("cache unavailable, serving from the service: %r", exc)
        return None


def cached_response(body, cache_state):
    """A body as the caches keep it: JSON bytes, sent as they are."""
    response = Response(body, mimetype="application/json")
    response.headers["X-Cache"] = cache_state
    return response
