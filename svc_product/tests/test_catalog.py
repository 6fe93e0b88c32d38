"""Product schemas, the catalog store on real PostgreSQL, and the service with worker_factory."""
import uuid

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import update

from shop_common.errors import InsufficientStock, ProductNotFound, SkuTaken, ValidationError
from svc_product import schemas
from svc_product.models import products
from svc_product.service import ProductService
from svc_product.store import CatalogStore


@pytest.fixture
def catalog(transactions_for):
    return CatalogStore(transactions_for("products"))


def new_product(catalog, stock=5, price="4.20"):
    fields = schemas.new_product({"sku": f"U-{uuid.uuid4().hex[:10]}", "name": "Unit", "price": price, "stock": 0})
    fields.pop("stock")  # Inventory's to set
    product = catalog.create_product(fields, "admin:tester")
    if stock:
        set_stock_as_inventory_does(catalog, product["id"], stock)
    return catalog.get_product(product["id"])


def set_stock_as_inventory_does(catalog, product_id, stock):
    with catalog.transactions.begin() as session:
        session.execute(update(products).where(products.c.id == product_id).values(stock=stock))


def test_new_product_validation():
    fields = schemas.new_product({"sku": "A-1", "name": " Lamp ", "price": "19.99", "stock": 3})
    assert fields == {"sku": "A-1", "name": "Lamp", "description": "", "price_cents": 1999, "currency": "USD",
                      "stock": 3}
    with pytest.raises(ValidationError) as error:
        schemas.new_product({"sku": "bad sku!", "name": "x", "price": 5, "stock": True, "currency": "usd"})
    assert {"sku", "stock", "currency"} <= set(error.value.details)


@pytest.mark.parametrize("price", ["1.999", "-1.00", "abc", "NaN", "1e3", " 1.00", "1000000.00", 1.5, None])
def test_prices_are_decimal_strings_with_two_places(price):
    with pytest.raises(ValidationError):
        schemas.new_product({"sku": "A", "name": "x", "price": price, "stock": 1})


def test_product_changes_reject_unknown_fields_and_empty_patches():
    assert schemas.product_changes({"stock": 0}, "USD") == {"stock": 0}
    with pytest.raises(ValidationError) as error:
        schemas.product_changes({"sku": "new"}, "USD")
    assert "sku" in error.value.details
    with pytest.raises(ValidationError):
        schemas.product_changes({}, "USD")


def test_prices_follow_the_products_currency():
    assert schemas.product_changes({"price": "1500"}, "JPY") == {"price_cents": 1500}
    with pytest.raises(ValidationError):
        schemas.product_changes({"price": "15.50"}, "JPY")
    fields = schemas.new_product({"sku": "J-1", "name": "Tea", "price": "1500", "currency": "JPY", "stock": 1})
    assert (fields["price_cents"], fields["currency"]) == (1500, "JPY")
    with pytest.raises(ValidationError) as error:
        schemas.new_product({"sku": "B-1", "name": "x", "price": "1.000", "currency": "BHD", "stock": 1})
    assert set(error.value.details) == {"currency"}  # not sold here: no second error about the price


def test_page_request_bounds():
    assert schemas.page_request("2", "100", " q ") == (2, 100, "q")
    for page, size in (("0", 20), (1, 101), ("x", 5), ("99999999999999999999", 20)):
        with pytest.raises(ValidationError):
            schemas.page_request(page, size, None)


def test_availability_check_prices_lines_and_names_the_short_product(catalog):
    product = new_product(catalog, stock=2)
    assert catalog.check_availability([(product["id"], 2)])[0]["price"] == "4.20"
    with pytest.raises(InsufficientStock) as error:
        catalog.check_availability([(product["id"], 3)])
    assert error.value.details == {"product_id": product["id"], "requested": 3, "available": 2}
    with pytest.raises(ProductNotFound):
        catalog.check_availability([(str(uuid.uuid4()), 1)])


def test_sku_is_unique(catalog):
    product = new_product(catalog)
    with pytest.raises(SkuTaken):
        catalog.create_product(dict(sku=product["sku"], name="y", description="", price_cents=100, currency="USD"),
                               "admin:tester")


def test_seed_is_idempotent(catalog):
    item = {"sku": f"SEED-{uuid.uuid4().hex[:8]}", "name": "Seeded", "description": "", "price_cents": 100,
            "currency": "USD", "stock": 1}
    assert catalog.seed([item]) == 1
    assert catalog.seed([item]) == 0


def test_changes_invalidate_the_cache():
    service = worker_factory(ProductService)
    service.catalog.update_product.return_value = {"id": "p1"}
    service.update_product("p1", {"price": "2.00"})
    service.catalog.update_product.assert_called_once_with("p1", {"price_cents": 200}, service.operator)
    service.cache.invalidate.assert_called_once_with(["p1"])


def test_invalid_change_reaches_neither_database_nor_cache():
    service = worker_factory(ProductService)
    with pytest.raises(ValidationError):
        service.update_product("p1", {"price": "free", "stock": 3})
    service.catalog.update_product.assert_not_called()
    service.inventory.set_stock.assert_not_called()
    service.cache.invalidate.assert_not_called()


def test_a_new_stock_level_is_set_by_inventory_and_the_rest_here():
    service = worker_factory(ProductService)
    service.catalog.get_product.return_value = {"id": "p1", "currency": "USD"}
    service.update_product("p1", {"price": "2.00", "stock": 7})
    service.catalog.update_product.assert_called_once_with("p1", {"price_cents": 200}, service.operator)
    assert service.inventory.set_stock.call_args.args[:2] == ("p1", 7)
    service.catalog.update_product.reset_mock()
    service.update_product("p1", {"stock": 0})
    service.catalog.update_product.assert_not_called()  # nothing of the product's own changed
    assert service.inventory.set_stock.call_args.args[:2] == ("p1", 0)


def test_the_catalog_never_writes_stock(catalog):
    product = new_product(catalog)
    with pytest.raises(ValueError, match="Inventory"):
        catalog.update_product(product["id"], {"stock": 1}, "admin:tester")


def test_a_product_is_hidden_or_shown_with_active():
    assert schemas.product_changes({"active": False}, "USD") == {"active": False}
    with pytest.raises(ValidationError) as error:
        schemas.product_changes({"active": "false"}, "USD")
    assert set(error.value.details) == {"active"}


def test_each_change_is_in_the_product_s_history_with_who_and_what_it_was_before(catalog):
    product = new_product(catalog, price="4.20")
    catalog.update_product(product["id"], {"price_cents": 500, "name": "Unit"}, "admin:u-1")  # the name is unchanged
    catalog.update_product(product["id"], {"active": False}, "operator:dana")
    catalog.update_product(product["id"], {"active": False}, "operator:dana")  # changes nothing: no entry
    history = catalog.product_history(product["id"], 50)["items"]
    assert [(entry["action"], entry["by"], entry["before"], entry["after"]) for entry in history] == [
        ("changed", "operator:dana", {"active": True}, {"active": False}),
        ("changed", "admin:u-1", {"price_cents": 420}, {"price_cents": 500}),
        ("created", "admin:tester", {}, {"sku": product["sku"], "name": "Unit", "description": "",
                                          "price_cents": 420, "currency": "USD"}),
    ]
    assert catalog.product_history(product["id"], 1)["items"] == history[:1]
    with pytest.raises(ProductNotFound):
        catalog.product_history(str(uuid.uuid4()), 50)


def test_a_change_that_fails_leaves_no_history(catalog):
    product = new_product(catalog)
    with pytest.raises(Exception):
        catalog.update_product(product["id"], {"price_cents": -1}, "admin:u-1")  # the database refuses it
    assert [entry["action"] for entry in catalog.product_history(product["id"], 50)["items"]] == ["created"]


def test_a_new_product_has_no_stock_until_inventory_sets_its_opening_level(catalog):
    fields = schemas.new_product({"sku": f"U-{uuid.uuid4().hex[:10]}", "name": "Unit", "price": "1.00", "stock": 4})
    with pytest.raises(ValueError, match="Inventory"):
        catalog.create_product(fields, "admin:tester")
    fields.pop("stock")
    assert catalog.create_product(fields, "admin:tester")["stock"] == 0


def test_a_new_product_is_withdrawn_only_while_it_has_no_stock(catalog):
    unstocked, stocked = new_product(catalog, stock=0), new_product(catalog, stock=0)
    set_stock_as_inventory_does(catalog, stocked["id"], 3)  # Inventory set it; its answer was lost
    assert catalog.withdraw_new_product(unstocked["id"]) is True
    with pytest.raises(ProductNotFound):
        catalog.get_product(unstocked["id"])
    assert catalog.withdraw_new_product(stocked["id"]) is False
    assert catalog.get_product(stocked["id"])["stock"] == 3
    assert [entry["action"] for entry in catalog.product_history(stocked["id"], 50)["items"]] == ["created"]


def test_the_opening_stock_is_set_by_inventory_and_a_failure_withdraws_the_product():
    service = worker_factory(ProductService)
    service.catalog.create_product.return_value = {"id": "p1"}
    service.catalog.get_product.return_value = {"id": "p1", "stock": 4}
    fields = {"sku": "S-1", "name": "Unit", "price": "1.00", "stock": 4}
    assert service.create_product(fields)["stock"] == 4
    assert "stock" not in service.catalog.create_product.call_args.args[0]
    service.inventory.set_stock.assert_called_once_with("p1", 4, "opening stock")
    service.cache.invalidate.assert_called_once_with(["p1"])

    service.inventory.set_stock.side_effect = TimeoutError("inventory did not answer")
    service.catalog.withdraw_new_product.return_value = True
    with pytest.raises(TimeoutError):
        service.create_product(fields)
    service.catalog.withdraw_new_product.assert_called_once_with("p1")

    service.catalog.withdraw_new_product.return_value = False  # it did set the stock: the product stands
    assert service.create_product(fields)["stock"] == 4

    service.inventory.set_stock.reset_mock()
    service.create_product(dict(fields, stock=0))
    service.inventory.set_stock.assert_not_called()
