from shop_common.errors import DomainError, IllegalTransition


class PaymentNotFound(DomainError):
    """No payment has been recorded for this order."""


class IllegalPaymentTransition(IllegalTransition):
    """A payment was asked to move to a status its current one forbids."""


class PaymentProviderUnavailable(Exception):
    """Stripe did not answer or answered with a server error: worth retrying."""
