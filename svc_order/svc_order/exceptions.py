from shop_common.errors import DomainError, IllegalTransition


class OrderNotFound(DomainError):
    """No order with this id belongs to the caller."""


class ProductNotFound(DomainError):
    """An ordered product does not exist."""


class InsufficientStock(DomainError):
    """The synchronous availability check found too little stock; details name the product."""


class AmountOutOfRange(DomainError):
    """The order's total is outside what the payment provider can charge (e.g. a free item alone)."""


class UserNotFound(DomainError):
    """The ordering user does not exist (any more)."""


class IllegalOrderTransition(IllegalTransition):
    """An order was asked to move to a status its current one forbids."""
