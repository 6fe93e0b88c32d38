"""Other services, as the Order service needs them."""

from shop_common.errors import ValidationError
from shop_common.money import check_currency, parse_amount
from shop_common.rpc import ServiceRpc


class ProductCatalog:
    """The Product service, as the Order service needs it."""

    def __init__(self, rpc):
        self.rpc = rpc

    def price_lines(self, lines):
        """Lines with name and unit price, after the synchronous availability check."""
        products = self.rpc.check_availability(lines)  # ProductNotFound, InsufficientStock cross as they are
        currencies = {product["currency"] for product in products}
        if len(currencies) != 1:
            raise ValidationError("all items of an order must share one currency", {"items": "mixed currencies"})
        currency = check_currency(currencies.pop(), "items")
        by_id = {product["id"]: product for product in products}
        priced = [{
            "product_id": line["product_id"],
            "name": by_id[line["product_id"]]["name"],
            "quantity": line["quantity"],
            "unit_price_cents": parse_amount(by_id[line["product_id"]]["price"], currency),
        } for line in lines]
        return priced, currency


class Customers:
    """The User service, as the Order service needs it."""

    def __init__(self, rpc):
        self.rpc = rpc

    def shipping_address(self, user_id):
        return self.rpc.get_user(user_id)["address"]

    def user_id_by_email(self, email):
        """The id of the user with this email; UserNotFound if there is none."""
        return self.rpc.get_user_by_email(email)["id"]


class ProductCatalogRpc(ServiceRpc):
    def __init__(self, **kwargs):
        super().__init__("product_service", **kwargs)

    def get_dependency(self, worker_ctx):
        return ProductCatalog(super().get_dependency(worker_ctx))


class CustomersRpc(ServiceRpc):
    def __init__(self, **kwargs):
        super().__init__("user_service", **kwargs)

    def get_dependency(self, worker_ctx):
        return Customers(super().get_dependency(worker_ctx))
