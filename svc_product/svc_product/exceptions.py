from shop_common.errors import DomainError


class ProductNotFound(DomainError):
    """No product has this id."""


class SkuTaken(DomainError):
    """Another product already has this SKU."""


class InsufficientStock(DomainError):
    """Fewer units are in stock than an order asks for; details name the product."""
