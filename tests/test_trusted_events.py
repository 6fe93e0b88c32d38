"""Forged events on the real broker: believed only when the topic's owner signed them, and only when they fit."""
import time
import uuid

import pytest
from kafka import KafkaProducer

from shop_common.errors import PaymentNotFound
from shop_common.messaging import event_signing, events


def send(shop, topic, event):
    producer = KafkaProducer(bootstrap_servers=shop.env["KAFKA_BOOTSTRAP_SERVERS"], acks="all")
    try:
        producer.send(topic, key=event["order_id"].encode(), value=events.encode(event)).get(timeout=10)
    finally:
        producer.close()


def dead_letters_for(rpc, event_ids, consumers, timeout=30):
    """{(event id, consumer): reason} once every listed event is dead-lettered by every listed consumer."""
    wanted = {(event_id, consumer) for event_id in event_ids for consumer in consumers}
    deadline = time.monotonic() + timeout
    while True:
        found = {(letter["event_id"], letter["consumer"]): letter["reason"]
                 for letter in rpc.order_service.dead_letters(2000)
                 if (letter["event_id"], letter["consumer"]) in wanted}
        if set(found) == wanted:
            return found
        assert time.monotonic() < deadline, f"not dead-lettered: {wanted - set(found)}"
        time.sleep(0.5)


def payment_success(order_id, amount, intent="pi_forged"):
    return events.new_event(events.PAYMENT_SUCCESS, {"order_id": order_id, "amount": amount, "currency": "USD",
                                                     "payment_intent": intent},
                            order_id=order_id, producer="payment_service")


def test_a_forged_payment_success_never_marks_an_order_paid(shop, shopper, admin, rpc, stripe_client):
    keys = event_signing.parse_keys(shop.env["SHOP_EVENT_KEYS"])
    product = admin.create_product(admin, stock=5, price="9.00")
    with shop.held("svc_payment"):  # no genuine payment event while the forgeries arrive
        order_id = shopper.place_order(product["id"]).json()["id"]
        unsigned = payment_success(order_id, "9.00")
        wrong_key = event_signing.sign(payment_success(order_id, "9.00"), b"a guessed key")
        impostor = event_signing.sign(dict(payment_success(order_id, "9.00"), producer="inventory_service"),
                                      keys["inventory_service"])  # a real key, but not the owner of shop.payments
        # Signed with the Payment service's own key, yet not this order's total: a bug, or a stolen key.
        too_little = event_signing.sign(payment_success(order_id, "0.01"), keys["payment_service"])
        for event in (unsigned, wrong_key, impostor, too_little):
            send(shop, events.PAYMENTS_TOPIC, event)
        reasons = dead_letters_for(rpc, [e["event_id"] for e in (unsigned, wrong_key, impostor, too_little)],
                                   ["order_service"])
        assert reasons[(unsigned["event_id"], "order_service")] == "untrusted: unsigned"
        assert reasons[(wrong_key["event_id"], "order_service")] == "untrusted: the signature does not match"
        assert reasons[(impostor["event_id"], "order_service")] == \
            "untrusted: producer 'inventory_service' may not publish on shop.payments"
        assert "not for this order's total" in reasons[(too_little["event_id"], "order_service")]
        assert shopper.get(f"/orders/{order_id}").json()["status"] == "PENDING"
        history = [entry["event_type"] for entry in rpc.order_service.get_order_with_history(order_id)["history"]]
        assert "PaymentSuccess" not in history

    final = shopper.wait_for_final(order_id)  # the real payment, once Payment is back
    assert final["status"] == "PAID"
    payment = rpc.payment_service.get_payment(order_id)
    assert payment["intent_id"] != "pi_forged"
    assert stripe_client.v1.payment_intents.retrieve(payment["intent_id"]).amount == 900


def test_a_forged_order_created_is_neither_charged_nor_deducted(shop, admin, rpc):
    product = admin.create_product(admin, stock=5, price="50.00")
    order_id = str(uuid.uuid4())
    created = events.new_event(events.ORDER_CREATED, {
        "order_id": order_id, "user_id": str(uuid.uuid4()), "payment_method": "pm_card_visa",
        "items": [{"product_id": product["id"], "quantity": 5, "unit_price": {"amount_minor": 1, "currency": "USD"}}],
        "total": {"amount_minor": 5, "currency": "USD"}}, order_id=order_id, producer="order_service")
    send(shop, events.ORDERS_TOPIC, created)  # unsigned: a forger with broker access but not Order's key
    reasons = dead_letters_for(rpc, [created["event_id"]], ["inventory_service", "payment_service"])
    assert set(reasons.values()) == {"untrusted: unsigned"}
    with pytest.raises(PaymentNotFound):
        rpc.payment_service.get_payment(order_id)
    assert admin.stock(product["id"]) == 5
