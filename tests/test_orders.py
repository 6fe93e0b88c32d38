"""Placing orders and their outcomes, end to end through Kafka and localstripe."""
import uuid

import pytest


def test_paid_order(shopper, admin, rpc):
    product = admin.create_product(admin, stock=5, price="19.99")
    shopper.get(f"/products/{product['id']}")
    assert shopper.get(f"/products/{product['id']}").headers["X-Cache"] == "HIT"  # cached with stock 5
    response = shopper.place_order(product["id"], quantity=2)
    assert response.status_code == 202, response.text
    order = response.json()
    assert order["status"] == "PENDING"
    assert order["items"][0]["unit_price"] == "19.99" and order["items"][0]["quantity"] == 2
    assert order["total"] == "39.98" and order["currency"] == "USD"
    assert "user_id" not in order

    final = shopper.wait_for_final(order["id"])
    assert final["status"] == "PAID"
    after = shopper.get(f"/products/{product['id']}")  # Inventory's deduction invalidated the entry
    assert after.headers["X-Cache"] == "MISS" and after.json()["stock"] == 3
    notes = shopper.get("/users/me/notifications").json()["items"]
    assert [(n["order_id"], n["kind"]) for n in notes] == [(order["id"], "paid")]
    assert rpc.payment_service.get_payment(order["id"])["status"] == "SUCCEEDED"
    assert rpc.inventory_service.get_reservation(order["id"])["state"] == "DEDUCTED"
    history = rpc.order_service.get_order_with_history(order["id"])["history"]
    assert history[0]["event_type"] == "OrderCreated"
    assert {"StockUpdated", "PaymentSuccess"} <= {entry["event_type"] for entry in history}
    assert rpc.order_service.get_order_with_history(order["id"])["order"]["shipping_address"]["city"] == "Springfield"


def test_declined_order_restores_stock(shopper, admin, rpc, wait_for_rpc):
    product = admin.create_product(admin, stock=4)
    order = shopper.place_order(product["id"], quantity=3, payment_method="pm_card_chargeCustomerFail").json()
    final = shopper.wait_for_final(order["id"])
    assert final["status"] == "PAYMENT_FAILED"
    assert "another payment method" in final["message"]
    assert rpc.payment_service.get_payment(order["id"])["status"] == "FAILED"
    reservation = wait_for_rpc(lambda: rpc.inventory_service.get_reservation(order["id"]),
                            lambda r: r["state"] in ("RESTORED", "VOIDED"))
    assert reservation["state"] in ("RESTORED", "VOIDED")
    assert shopper.stock(product["id"]) == 4
    notes = shopper.get("/users/me/notifications").json()["items"]
    assert notes[0]["order_id"] == order["id"] and notes[0]["kind"] == "payment_failed"


def test_insufficient_stock_is_409_at_the_synchronous_check(shopper, admin):
    product = admin.create_product(admin, stock=2)
    response = shopper.place_order(product["id"], quantity=3)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "insufficient_stock" and error["details"]["product_id"] == product["id"]
    assert shopper.get("/orders").json()["items"] == []


def test_unknown_product_is_404(shopper):
    response = shopper.place_order(str(uuid.uuid4()))
    assert response.status_code == 404 and response.json()["error"]["code"] == "product_not_found"


@pytest.mark.parametrize("body, field", [
    ({"items": [], "payment_method": "pm_card_visa"}, "items"),
    ({"items": [{"product_id": "p", "quantity": 0}], "payment_method": "pm_card_visa"}, "items[0].quantity"),
    ({"items": [{"product_id": "p", "quantity": 600}, {"product_id": "p", "quantity": 401}],
      "payment_method": "pm_card_visa"}, "items[1].quantity"),  # one product's lines add up past 1000
    ({"items": [{"product_id": f"p{i}", "quantity": 1} for i in range(51)], "payment_method": "pm_card_visa"},
     "items"),
    ({"items": [{"product_id": "p", "quantity": 1}]}, "payment_method"),
])
def test_order_validation(shopper, body, field):
    response = shopper.post("/orders", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error" and field in error["details"]


def test_orders_need_a_token(api):
    assert api.post("/orders", json={"items": [], "payment_method": "x"}).status_code == 401
    assert api.get("/orders").status_code == 401


def test_another_users_order_is_404(shopper, api, admin):
    product = admin.create_product(admin, stock=2)
    order = shopper.place_order(product["id"]).json()
    shopper.get(f"/orders/{order['id']}")  # make sure it is in the Redis cache
    stranger, _ = api.new_shopper()
    theirs = stranger.get(f"/orders/{order['id']}")
    unknown = stranger.get(f"/orders/{uuid.uuid4()}")
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json() == {"error": {"code": "order_not_found", "message": "order not found",
                                       "details": {"order_id": order["id"]}}}
    assert unknown.json()["error"]["code"] == "order_not_found"


def test_idempotency_key_returns_the_first_order_and_refuses_another_request(shopper, admin):
    product = admin.create_product(admin, stock=5)
    key = {"Idempotency-Key": f"checkout-{uuid.uuid4()}"}
    first = shopper.place_order(product["id"], headers=dict(key))
    again = shopper.place_order(product["id"], headers=dict(key))
    other = shopper.place_order(product["id"], quantity=2, headers=dict(key))
    assert first.status_code == 202
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert other.json()["error"]["details"]["order_id"] == first.json()["id"]
    assert len(shopper.get("/orders").json()["items"]) == 1
    shopper.wait_for_final(first.json()["id"])
    assert shopper.stock(product["id"]) == 4


def test_list_orders_newest_first(shopper, admin):
    product = admin.create_product(admin, stock=5)
    ids = [shopper.place_order(product["id"]).json()["id"] for _ in range(3)]
    listed = [order["id"] for order in shopper.get("/orders").json()["items"]]
    assert listed == list(reversed(ids))



def test_lines_of_one_product_are_one_line_of_their_sum(shopper, admin):
    product = admin.create_product(admin, stock=5, price="2.00")
    placed = shopper.post("/orders", json={"items": [{"product_id": product["id"], "quantity": 1},
                                                     {"product_id": product["id"], "quantity": 2}],
                                           "payment_method": "pm_card_visa"})
    assert placed.status_code == 202
    assert [(item["product_id"], item["quantity"]) for item in placed.json()["items"]] == [(product["id"], 3)]
    assert placed.json()["total"] == "6.00"
    assert shopper.wait_for_final(placed.json()["id"])["status"] == "PAID"
    assert shopper.stock(product["id"]) == 2
