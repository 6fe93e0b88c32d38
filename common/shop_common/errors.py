"""Every error a caller of the shop can be told about: one class each, knowing its HTTP status and
public code.

The classes are registered with Nameko (``deserialize_to_instance``), so one
raised in a remote worker is raised again, as the same class with the same
message and details, in the caller: the Order service lets a
``ProductNotFound`` from the Product service through unchanged, and the
gateway answers any ``DomainError`` from its ``status`` and ``code``. An
exception that is not in this catalogue stays a Nameko ``RemoteError`` and
becomes a 500 with a correlation id.
"""
import json

from nameko.exceptions import deserialize_to_instance


class DomainError(Exception):
    """Base of every error a caller is meant to see and act on."""

    status = 400
    code = "bad_request"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        deserialize_to_instance(cls)  # crosses RPC as itself (see module doc)

    def __init__(self, message, details=None):
        super().__init__(message, details or {})
        self.message = message
        self.details = details or {}

    def __str__(self):
        return json.dumps({"message": self.message, "details": self.details})


class TransientError(Exception):
    """Infrastructure that is away for now (a provider down, a lease held elsewhere).

    Retrying later can succeed, so Kafka handlers raising it are retried
    without limit, holding only their own partition. Over RPC it is a 503.
    """

    status = 503
    code = "unavailable"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        deserialize_to_instance(cls)

    def __init__(self, message, details=None):
        super().__init__(message, details or {})
        self.message = message
        self.details = details or {}

    def __str__(self):
        return self.message


deserialize_to_instance(DomainError)
deserialize_to_instance(TransientError)


# -- input ---------------------------------------------------------------
class ValidationError(DomainError):
    """Input is malformed; ``details`` maps field names to what is wrong."""

    status, code = 400, "validation_error"


class AmountOutOfRange(DomainError):
    """An order's total is outside what the payment provider can charge (e.g. a free item alone)."""

    status, code = 400, "amount_out_of_range"


# -- who is asking -------------------------------------------------------
class InvalidCredentials(DomainError):
    """Unknown email or wrong password; the two are never told apart."""

    status, code = 401, "invalid_credentials"


class InvalidRefreshToken(DomainError):
    """A refresh token unknown, expired, revoked, or used before (which ends its whole family)."""

    status, code = 401, "invalid_refresh_token"


class UserNotFound(DomainError):
    """No user has this id: to the gateway, a token for an account that no longer exists."""

    status, code = 401, "unauthorized"


# -- what is asked for ---------------------------------------------------
class ProductNotFound(DomainError):
    """No product has this id."""

    status, code = 404, "product_not_found"


class OrderNotFound(DomainError):
    """No order with this id belongs to the caller."""

    status, code = 404, "order_not_found"


class PaymentNotFound(DomainError):
    """No payment has been recorded for this order."""

    status, code = 404, "payment_not_found"


class ReservationNotFound(DomainError):
    """No stock decision has been recorded for this order."""

    status, code = 404, "reservation_not_found"


# -- conflicts with what is there ----------------------------------------
class EmailTaken(DomainError):
    """An account with this email exists."""

    status, code = 409, "email_taken"


class SkuTaken(DomainError):
    """Another product already has this SKU."""

    status, code = 409, "sku_taken"


class InsufficientStock(DomainError):
    """Fewer units are in stock than asked for (an order, or an adjustment); details name the product."""

    status, code = 409, "insufficient_stock"


class IdempotencyKeyReused(DomainError):
    """This Idempotency-Key already placed an order with a different request."""

    status, code = 422, "idempotency_key_reused"


class IllegalTransition(DomainError):
    """A state machine was asked for a move it does not allow."""

    status, code = 409, "illegal_transition"


class IllegalOrderTransition(IllegalTransition):
    """An order was asked to move to a status its current one forbids."""


class IllegalPaymentTransition(IllegalTransition):
    """A payment was asked to move to a status its current one forbids."""


class IllegalReservationTransition(IllegalTransition):
    """A reservation was asked to move to a state its current one forbids."""


# -- facts that contradict what is known -----------------------------------
class PaymentMismatch(DomainError):
    """A payment event whose amount or currency is not its order's total (dead-lettered, never applied)."""

    status, code = 409, "payment_mismatch"


# -- away for now (503: Stripe's webhook delivery retries it) -------------
class RequestExpired(TransientError):
    """The caller's deadline passed before the work could start or commit (see shop_common.rpc)."""


class InjectedFault(TransientError):
    """A failure a fault flag asked for (shop_common.faults)."""


class PaymentProviderUnavailable(TransientError):
    """Stripe did not answer or answered with a server error: worth retrying."""


class PaymentBusy(TransientError):
    """Another worker is charging or refunding this order right now: try again shortly."""


class DatabaseUnavailable(TransientError):
    """The database refused or dropped the connection, or none was free in time: try again shortly."""


def public_errors():
    """Every error class a caller can receive: (class, status, code), for the OpenAPI document and docs."""
    found, pending = [], [DomainError, TransientError]
    while pending:
        cls = pending.pop(0)
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return [(cls, cls.status, cls.code) for cls in found if cls not in (DomainError, TransientError)]
