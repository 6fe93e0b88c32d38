"""Other services, as the Product service calls them."""

from shop_common.rpc import ServiceRpc


class InventoryRpc(ServiceRpc):
    """The Inventory service: the one writer of stock, a new product's opening level included."""

    def __init__(self, **kwargs):
        super().__init__("inventory_service", **kwargs)
