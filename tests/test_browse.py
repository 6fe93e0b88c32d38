"""Browsing through the gateway's Redis cache, and admin changes that invalidate it."""

from shop_common.money import decimals


def test_list_is_cached_after_first_read(api, admin):
    admin.create_product(admin, stock=5)  # a change: the next list read must go to the database
    query = "/products?page=1&page_size=7"
    first = api.get(query)
    assert first.status_code == 200 and first.headers["X-Cache"] == "MISS"
    # Stock changes anywhere drop every cached list, and earlier tests' orders may still be
    # settling: a change between the two reads is allowed to cost one more miss, a few times.
    for _ in range(5):
        second = api.get(query)
        if second.headers["X-Cache"] == "HIT":
            break
    assert second.status_code == 200
    assert second.headers["X-Cache"] == "HIT"
    assert first.json() == second.json()
    body = first.json()
    assert body["page"] == 1 and body["page_size"] == 7 and len(body["items"]) == 7
    assert body["total"] >= 20
    assert set(body["items"][0]) >= {"id", "sku", "name", "description", "price", "currency", "stock"}


def test_seeded_catalog_has_at_least_twenty_products(api):
    body = api.get("/products?page_size=100").json()
    assert body["total"] >= 20
    # Every price in its currency's minor units: "89.99" USD, "1500" JPY.
    assert all(len(item["price"].partition(".")[2]) == decimals(item["currency"]) for item in body["items"])


def test_search_filters_the_list(api):
    body = api.get("/products?q=keyboard").json()
    assert body["items"] and all("keyboard" in (i["name"] + i["description"]).lower() for i in body["items"])


def test_admin_change_invalidates_product_and_list(api, admin):
    product = admin.create_product(admin, stock=3, price="12.50")
    path = f"/products/{product['id']}"
    assert api.get(path).headers["X-Cache"] == "MISS"
    assert api.get(path).headers["X-Cache"] == "HIT"
    listing = f"/products?q={product['sku']}"
    assert api.get(listing).json()["items"][0]["price"] == "12.50"
    assert api.get(listing).headers["X-Cache"] == "HIT"

    changed = admin.patch(path, json={"price": "9.99", "stock": 42, "name": "Renamed"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["price"] == "9.99"

    after = api.get(path)
    assert after.headers["X-Cache"] == "MISS"
    assert after.json()["price"] == "9.99" and after.json()["stock"] == 42 and after.json()["name"] == "Renamed"
    relisted = api.get(listing)
    assert relisted.headers["X-Cache"] == "MISS"
    assert relisted.json()["items"][0]["price"] == "9.99"


def test_a_stock_level_set_by_patch_is_inventorys_change_with_who_and_the_delta(api, admin):
    product = admin.create_product(admin, stock=3)
    path = f"/products/{product['id']}"
    assert api.get(path).json()["stock"] == 3 and api.get(path).headers["X-Cache"] == "HIT"
    changed = admin.patch(path, json={"stock": 10})
    assert changed.status_code == 200 and changed.json()["stock"] == 10
    after = api.get(path)  # Inventory, which changed it, dropped the cached product
    assert after.headers["X-Cache"] == "MISS" and after.json()["stock"] == 10
    assert admin.patch(path, json={"stock": 10}).status_code == 200  # the same level: nothing to record
    admin_id = admin.get("/users/me").json()["id"]
    ledger = admin.get(f"/admin/products/{product['id']}/stock").json()["items"]
    assert [(entry["delta"], entry["stock_after"], entry["reason"], entry["by"]) for entry in ledger] == [
        (7, 10, "set to 10 by PATCH /products/" + product["id"], f"admin:{admin_id}"),
        (3, 3, "opening stock", f"admin:{admin_id}")]  # Inventory set the new product's stock too
    refused = admin.patch(path, json={"stock": -1, "name": "Never applied"})
    assert refused.status_code == 400 and set(refused.json()["error"]["details"]) == {"stock"}
    assert api.get(path).json()["name"] == product["name"]  # nothing of a refused change is written


def test_unknown_product_is_404(api):
    response = api.get("/products/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "product_not_found"


def test_admin_only_changes(api, shopper, admin):
    body = {"sku": "NOPE-1", "name": "x", "price": "1.00", "stock": 1}
    assert api.post("/products", json=body).status_code == 401
    forbidden = shopper.post("/products", json=body)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    product = admin.create_product(admin, stock=1)
    assert shopper.patch(f"/products/{product['id']}", json={"stock": 0}).status_code == 403


def test_duplicate_sku_is_409(admin):
    product = admin.create_product(admin, stock=1)
    again = admin.post("/products", json={"sku": product["sku"], "name": "y", "price": "1.00", "stock": 1})
    assert again.status_code == 409 and again.json()["error"]["code"] == "sku_taken"


def test_bad_product_input_is_400(admin, api):
    response = admin.post("/products", json={"sku": "", "name": "x", "price": "1.999", "stock": -1})
    assert response.status_code == 400
    assert {"sku", "price", "stock"} <= set(response.json()["error"]["details"])
    too_big = api.get("/products?page_size=101")
    assert too_big.status_code == 400 and "page_size" in too_big.json()["error"]["details"]
    far_page = api.get("/products?page=99999999999999999999")
    assert far_page.status_code == 400 and "page" in far_page.json()["error"]["details"]
    pricey = admin.post("/products", json={"sku": "PRICEY-1", "name": "x", "price": "99999999999.99", "stock": 1})
    assert pricey.status_code == 400 and "price" in pricey.json()["error"]["details"]


def test_errors_are_json_never_html(api):
    unknown = api.get("/no/such/path")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    malformed = api.post("/auth/login", data="{not json", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "validation_error"


def test_health_ready_and_openapi(api):
    assert api.get("/health").json() == {"status": "ok"}
    assert api.get("/ready").status_code == 200
    spec = api.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.") and "/orders/{order_id}" in spec["paths"]


def test_a_request_line_past_gunicorn_s_limit_is_414_as_documented(api):
    response = api.get("/products", params={"q": "x" * 5000})
    assert response.status_code == 414
    assert "414" in api.get("/openapi.json").json()["paths"]["/products"]["get"]["responses"]
