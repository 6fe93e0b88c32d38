"""Every error the gateway answers with, in one table.

Domain errors raised by a service arrive as nameko RemoteErrors named by
their class; ``DOMAIN_ERRORS`` maps each name to an HTTP status and the
contract's stable error code. Anything unmapped is a 500 with a generic body
(and a log line), never a stack trace.
"""
import logging

from flask import jsonify
from kombu.exceptions import OperationalError
from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from shop_common.errors import decode_remote_value

log = logging.getLogger(__name__)

DOMAIN_ERRORS = {
    "ValidationError": (400, "validation_error"),
    "InvalidCredentials": (401, "invalid_credentials"),
    "UserNotFound": (401, "unauthorized"),  # a token for an account that no longer exists
    "ProductNotFound": (404, "product_not_found"),
    "OrderNotFound": (404, "order_not_found"),
    "EmailTaken": (409, "email_taken"),
    "SkuTaken": (409, "sku_taken"),
    "InsufficientStock": (409, "insufficient_stock"),
    "StockWouldGoNegative": (409, "insufficient_stock"),
    "AmountOutOfRange": (400, "amount_out_of_range"),
    "RequestExpired": (503, "unavailable"),
    "IllegalOrderTransition": (409, "illegal_transition"),
    "IllegalPaymentTransition": (409, "illegal_transition"),
    "PaymentNotFound": (404, "payment_not_found"),
    # Stripe's webhook delivery retries anything but a 2xx: these are worth its retry.
    "PaymentBusy": (503, "unavailable"),
    "PaymentProviderUnavailable": (503, "unavailable"),
}

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
    def __init__(self, status, code, message, details=None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_response(status, code, message, details=None):
    body = {"error": {"code": code, "message": message}}
    if details:
        body["error"]["details"] = details
    response = jsonify(body)
    response.status_code = status
    return response


def register(app):
    @app.errorhandler(ApiError)
    def api_error(exc):
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(RemoteError)
    def remote_error(exc):
        status, code = DOMAIN_ERRORS.get(exc.exc_type, (None, None))
        if status is None:
            log.error("unmapped remote error %s: %s", exc.exc_type, exc.value)
            return error_response(500, "internal_error", "Something went wrong on our side.")
        message, details = decode_remote_value(exc.value)
        return error_response(status, code, message, details)

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
        return error_response(exc.code, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "Something went wrong on our side.")
