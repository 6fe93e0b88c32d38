from shop_common.errors import DomainError, IllegalTransition


class ReservationNotFound(DomainError):
    """No stock decision has been recorded for this order."""


class IllegalReservationTransition(IllegalTransition):
    """A reservation was asked to move to a state its current one forbids."""


class ProductNotFound(DomainError):
    """No product has this id."""


class StockWouldGoNegative(DomainError):
    """An adjustment would take more units than are in stock."""
