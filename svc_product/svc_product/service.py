import logging

from shop_common import audit
from shop_common.rpc import rpc
from shop_common.service import ServiceBase
from shop_common.storage.cache import ProductCacheProvider
from svc_product import schemas
from svc_product.clients import InventoryRpc
from svc_product.service_name import NAME
from svc_product.store import Catalog

log = logging.getLogger(__name__)


class ProductService(ServiceBase):
    name = NAME
    package = "svc-product"

    catalog = Catalog()
    cache = ProductCacheProvider()
    inventory = InventoryRpc()

    @rpc
    def list_products(self, page=1, page_size=20, q=None):
        return self.catalog.list_products(*schemas.page_request(page, page_size, q))

    @rpc
    def get_product(self, product_id):
        return self.catalog.get_product(product_id)

    @rpc
    def create_product(self, fields):
        """The admin's POST: the product here, its opening stock by Inventory (the one writer of stock,
        whose ledger then accounts for every unit). If that fails, the product is withdrawn, so the
        admin's retry is not refused as a taken SKU."""
        fields = schemas.new_product(fields)
        stock = fields.pop("stock")
        product = self.catalog.create_product(fields, self.operator)
        if stock:
            try:
                self.inventory.set_stock(product["id"], stock, "opening stock")
            except Exception:
                if self.catalog.withdraw_new_product(product["id"]):
                    raise
                log.warning("opening stock of %s set though its answer was lost", product["id"])
            product = self.catalog.get_product(product["id"])
        self.cache.invalidate([product["id"]])
        return product

    @rpc
    def update_product(self, product_id, changes):
        """The admin's PATCH. Every field is checked before any is written; a new stock level is set by
        Inventory (its ledger says who), which also drops the cached product it changes."""
        currency = self.catalog.get_product(product_id)["currency"]
        validated = schemas.product_changes(changes, currency)
        stock = validated.pop("stock", None)
        if validated:
            self.catalog.update_product(product_id, validated, self.operator)
            log.warning("audit: %s changed product %s: %s", self.operator, product_id, validated)
            self.cache.invalidate([product_id])
        if stock is not None:
            self.inventory.set_stock(product_id, stock, f"set to {stock} by PATCH /products/{product_id}")
        return self.catalog.get_product(product_id)

    @rpc
    def product_history(self, product_id, limit=50):
        """Operator call: who created and changed the product, each change's fields before and after,
        newest first (its stock's history: inventory_service.stock_history)."""
        return self.catalog.product_history(product_id, audit.history_limit(limit))

    @rpc
    def check_availability(self, items):
        return self.catalog.check_availability(schemas.order_lines(items))

    @rpc
    def get_stock(self, product_id):
        """Operator call: the stock level as the database has it now."""
        product = self.catalog.get_product(product_id)
        return {"product_id": product_id, "sku": product["sku"], "stock": product["stock"]}
