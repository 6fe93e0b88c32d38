"""A rollout half-way: one Order instance sends OrderCreated v2, the other still v1 (see conftest).
Inventory and Payment read both, so every order is deducted and charged its own total."""
import json

from shop_common import testing
from shop_common.messaging import events


def order_created_versions(shop, order_ids):
    """{order id: [event_version of each OrderCreated on the wire]}."""
    seen = {}
    for record in testing.records_of(shop.env["KAFKA_BOOTSTRAP_SERVERS"], events.ORDERS_TOPIC):
        if record.key and record.key.decode() in order_ids:
            event = json.loads(record.value)
            if event["event_type"] == events.ORDER_CREATED:
                seen.setdefault(event["order_id"], []).append(event["event_version"])
    return seen


def test_orders_created_as_v1_and_v2_at_once_are_all_deducted_and_charged(shopper, admin, rpc, stripe_client,
                                                                        shop):
    products = [admin.create_product(admin, stock=20, price=price, currency=currency)
                for price, currency in (("12.34", "EUR"), ("700", "JPY"))]
    placed = {}
    for n in range(12):  # RabbitMQ hands the RPCs to both Order instances in turn
        product = products[n % 2]
        response = shopper.place_order(product["id"], quantity=1 + n % 3)
        assert response.status_code == 202, response.text
        placed[response.json()["id"]] = (product, 1 + n % 3)

    versions = order_created_versions(shop, set(placed))
    assert set(versions) == set(placed)
    assert {version for sent in versions.values() for version in sent} == {1, 2}, versions

    for order_id, (product, quantity) in placed.items():
        final = shopper.wait_for_final(order_id)
        assert final["status"] == "PAID", final
        payment = rpc.payment_service.get_payment(order_id)
        intent = stripe_client.v1.payment_intents.retrieve(payment["intent_id"])
        minor = int(product["price"].replace(".", ""))  # EUR in cents, JPY in yen
        assert (intent.amount, intent.currency.upper()) == (minor * quantity, product["currency"])
        reserved = rpc.inventory_service.get_reservation(order_id)["items"]
        assert [(line["product_id"], line["quantity"]) for line in reserved] == [(product["id"], quantity)]
    assert [shopper.stock(product["id"]) for product in products] == [
        20 - sum(quantity for product_of, quantity in placed.values() if product_of is product)
        for product in products]
