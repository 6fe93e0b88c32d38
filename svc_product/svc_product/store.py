"""The catalog store: every product read, and every write but stock's (Inventory's)."""
import uuid

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from shop_common.errors import InsufficientStock, ProductNotFound, SkuTaken
from shop_common.storage.db import StoreProvider
from svc_product.models import product_changes, products
from svc_product.schemas import product_change_view, product_view


class CatalogStore:
    def __init__(self, transactions):
        self.transactions = transactions

    def list_products(self, page, page_size, query):
        condition = products.c.active  # hidden products are not in the catalogue
        if query:
            pattern = f"%{query}%"
            condition = and_(condition, or_(products.c.name.ilike(pattern), products.c.description.ilike(pattern),
                                            products.c.sku.ilike(pattern)))
        with self.transactions.begin() as session:
            total = session.execute(select(func.count()).select_from(products).where(condition)).scalar_one()
            rows = session.execute(
                select(products).where(condition).order_by(products.c.name, products.c.id)
                .limit(page_size).offset((page - 1) * page_size)
            ).all()
        return {"items": [product_view(row) for row in rows], "page": page, "page_size": page_size, "total": total}

    def get_product(self, product_id):
        with self.transactions.one_statement() as statement:
            row = statement.execute(select(products).where(products.c.id == product_id)).first()
        if row is None:
            raise ProductNotFound("product not found", {"product_id": product_id})
        return product_view(row)

    def create_product(self, fields, by):
        """A new product, with no stock: Inventory sets its opening level."""
        if "stock" in fields:
            raise ValueError("stock is Inventory's to set (inventory_service.set_stock)")
        product_id = str(uuid.uuid4())
        try:
            with self.transactions.begin() as session:
                row = session.execute(products.insert().values(id=product_id, **fields).returning(products)).one()
                session.execute(product_changes.insert().values(
                    product_id=product_id, action="created", changed_by=by, before={},
                    after=fields))
        except IntegrityError:
            raise SkuTaken("a product with this SKU exists", {"sku": fields["sku"]})
        return product_view(row)

    def update_product(self, product_id, changes, by):
        """Name, description, price, active; never stock, which only Inventory changes. The fields that
        really change are recorded in the product's history, in the same transaction."""
        if "stock" in changes:
            raise ValueError("stock is Inventory's to change (inventory_service.set_stock)")
        with self.transactions.begin() as session:
            current = session.execute(select(products).where(products.c.id == product_id).with_for_update()).first()
            if current is None:
                raise ProductNotFound("product not found", {"product_id": product_id})
            changed = {name: value for name, value in changes.items() if getattr(current, name) != value}
            if not changed:
                return product_view(current)
            row = session.execute(
                update(products).where(products.c.id == product_id)
                .values(**changed, updated_at=func.now()).returning(products)
            ).one()
            session.execute(product_changes.insert().values(
                product_id=product_id, action="changed", changed_by=by,
                before={name: getattr(current, name) for name in changed}, after=changed))
        return product_view(row)

    def withdraw_new_product(self, product_id):
        """Undo a creation whose opening stock could not be set, if it still has none: nothing can have
        used it (its id was never answered). False when Inventory did set it (its answer was lost):
        the product stands."""
        with self.transactions.begin() as session:
            stock = session.execute(select(products.c.stock).where(products.c.id == product_id)
                                    .with_for_update()).scalar()
            if stock != 0:
                return False
            session.execute(product_changes.delete().where(product_changes.c.product_id == product_id))
            session.execute(products.delete().where(products.c.id == product_id))
        return True

    def product_history(self, product_id, limit):
        """The product's creation and changes, newest first."""
        with self.transactions.begin() as session:
            if session.execute(select(products.c.id).where(products.c.id == product_id)).first() is None:
                raise ProductNotFound("product not found", {"product_id": product_id})
            rows = session.execute(
                select(product_changes).where(product_changes.c.product_id == product_id)
                .order_by(product_changes.c.id.desc()).limit(limit)
            ).all()
        return {"items": [product_change_view(row) for row in rows]}

    def check_availability(self, lines):
        """Products of the lines with price and stock; raises if any is unknown or short."""
        wanted = dict(lines)
        with self.transactions.one_statement() as statement:
            rows = statement.execute(select(products).where(products.c.id.in_(list(wanted)),
                                                            products.c.active)).all()  # hidden: not orderable
        found = {row.id: row for row in rows}
        for product_id, quantity in lines:
            row = found.get(product_id)
            if row is None:
                raise ProductNotFound("product not found", {"product_id": product_id})
            if row.stock < quantity:
                raise InsufficientStock(
                    f"only {row.stock} of {row.name} in stock",
                    {"product_id": product_id, "requested": quantity, "available": row.stock},
                )
        return [product_view(found[product_id]) for product_id, _ in lines]

    def seed(self, catalog):
        """Insert each product whose SKU is new; existing ones are left as they are."""
        with self.transactions.begin() as session:
            result = session.execute(
                insert(products).values([{"id": str(uuid.uuid4()), **item} for item in catalog])
                .on_conflict_do_nothing(index_elements=["sku"])
            )
        return result.rowcount


class Catalog(StoreProvider):
    store_class = CatalogStore
