"""Concurrency: many orders for little stock, and stock running out after the check."""
import eventlet
import pytest


def test_sold_out_between_check_and_deduction_is_cancelled_and_refunded(shop, api, admin, stripe_client,
                                                                       wait_for_payment):
    product = admin.create_product(admin, stock=1)
    first, _ = api.new_shopper()
    second, _ = api.new_shopper()
    with shop.held("svc_inventory"):  # both orders pass the check: nothing is deducted yet
        order_a = first.place_order(product["id"]).json()
        order_b = second.place_order(product["id"]).json()
        assert order_a["status"] == order_b["status"] == "PENDING"
        # Payment charges both while Inventory is away.
        for order in (order_a, order_b):
            assert wait_for_payment(order["id"], ("SUCCEEDED",))["status"] == "SUCCEEDED"

    finals = {first.wait_for_final(order_a["id"], timeout=60)["status"],
              second.wait_for_final(order_b["id"], timeout=60)["status"]}
    assert finals == {"PAID", "CANCELLED"}
    cancelled_client, cancelled = next(
        (client, order) for client, order in ((first, order_a), (second, order_b))
        if client.get(f"/orders/{order['id']}").json()["status"] == "CANCELLED")
    assert "refunded" in cancelled_client.get(f"/orders/{cancelled['id']}").json()["message"]

    payment = wait_for_payment(cancelled["id"], ("REFUNDED",))
    assert payment["status"] == "REFUNDED" and payment["refund_id"]
    refunds = stripe_client.v1.refunds.list(params={"payment_intent": payment["intent_id"]}).data
    assert [refund.id for refund in refunds] == [payment["refund_id"]]
    assert refunds[0].amount == 1000
    assert api.stock(product["id"]) == 0
    assert cancelled_client.get("/users/me/notifications").json()["items"][0]["kind"] == "cancelled"


def test_thirty_concurrent_orders_for_ten_units(api, admin, wait_for_payment):
    product = admin.create_product(admin, stock=10)
    shoppers = [api.new_shopper()[0] for _ in range(5)]

    def place(index):
        client = shoppers[index % len(shoppers)]
        return client, client.place_order(product["id"])

    pool = eventlet.GreenPool(30)
    results = list(pool.imap(place, range(30)))
    accepted = [(client, response.json()) for client, response in results if response.status_code == 202]
    rejected = [response for _, response in results if response.status_code != 202]
    assert all(r.status_code == 409 and r.json()["error"]["code"] == "insufficient_stock" for r in rejected)
    assert len(accepted) >= 10

    statuses = [client.wait_for_final(order["id"], timeout=90)["status"] for client, order in accepted]
    assert statuses.count("PAID") == 10
    assert set(statuses) <= {"PAID", "CANCELLED"}
    assert api.stock(product["id"]) == 0
    for (client, order), status in zip(accepted, statuses):
        if status == "CANCELLED":
            payment = wait_for_payment(order["id"], ("REFUNDED", "VOIDED"))
            assert payment["status"] in ("REFUNDED", "VOIDED")
