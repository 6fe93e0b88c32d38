from shop_common.errors import DomainError, IllegalTransition, TransientError


class PaymentNotFound(DomainError):
    """No payment has been recorded for this order."""


class IllegalPaymentTransition(IllegalTransition):
    """A payment was asked to move to a status its current one forbids."""


class PaymentProviderUnavailable(TransientError):
    """Stripe did not answer or answered with a server error: worth retrying."""


class PaymentBusy(TransientError):
    """Another worker is charging or refunding this order right now: try again shortly."""

    def __init__(self, message, details=None):
        super().__init__(message)
        self.details = details or {}
