"""How every error becomes a response: ``{"error": {"code", "message", "details"?}}``.

A domain error from a service arrives as its own class (``shop_common.errors``,
registered with Nameko), which knows its HTTP status and public code. HTTP
errors of the gateway itself map by status below. Anything else is a 500 with
a generic body (and a log line), never a stack trace.
"""
import logging
import uuid

from flask import jsonify
from kombu.exceptions import OperationalError
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from opentelemetry import trace
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from shop_common.errors import DomainError, TransientError

log = logging.getLogger(__name__)

HTTP_ERRORS = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ApiError(Exception):
    def __init__(self, status, code, message, details=None, headers=None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = headers or {}


def error_response(status, code, message, details=None, **extra):
    body = {"error": {"code": code, "message": message, **extra}}
    if details:
        body["error"]["details"] = details
    response = jsonify(body)
    response.status_code = status
    return response


def register(app):
    @app.errorhandler(ApiError)
    def api_error(exc):
        response = error_response(exc.status, exc.code, exc.message, exc.details)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(DomainError)
    @app.errorhandler(TransientError)  # e.g. Stripe's webhook delivery retries the 503 of a busy payment
    def domain_error(exc):
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(RemoteError)  # not in the catalogue: a bug, not the caller's business
    def remote_error(exc):
        return internal_error("unexpected remote error %s: %s", exc.exc_type, exc.value)

    @app.errorhandler(RpcTimeout)
    @app.errorhandler(UnknownService)
    @app.errorhandler(OperationalError)
    @app.errorhandler(ConnectionError)
    @app.errorhandler(RedisError)  # e.g. the login throttle cannot count: refuse rather than guess
    def unavailable(exc):
        log.warning("dependency unavailable: %r", exc)
        return error_response(503, "unavailable", "A service the shop depends on is unavailable; try again soon.")

    @app.errorhandler(HTTPException)
    def http_error(exc):
        code = HTTP_ERRORS.get(exc.code, "http_error")
        response = error_response(exc.code, code, exc.description or exc.name)
        for name, value in exc.get_headers():  # e.g. Allow on a 405
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(exc):
        return internal_error("unhandled error", exc_info=exc)


def internal_error(what, *args, exc_info=None):
    """A 500 that tells the caller only an id to quote: the request's trace id, logged with the cause."""
    context = trace.get_current_span().get_span_context()
    correlation_id = format(context.trace_id, "032x") if context.is_valid else uuid.uuid4().hex
    log.error(what + " (correlation id %s)", *args, correlation_id, exc_info=exc_info)
    return error_response(500, "internal_error", "Something went wrong on our side.", correlation_id=correlation_id)
