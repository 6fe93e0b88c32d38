"""The operator's calls on a live shop: cancel a stuck order, find orders."""
import pytest
from nameko.exceptions import RemoteError


def test_an_operator_cancels_a_stuck_order_and_everything_is_given_back(shop, shopper, admin, rpc, wait_for_rpc):
    product = admin.create_product(admin, stock=5)
    with shop.held("svc_payment"):  # stock is deducted, the charge cannot happen: the order is stuck
        order = shopper.place_order(product["id"], quantity=2).json()
        wait_for_rpc(lambda: rpc.inventory_service.get_reservation(order["id"]),
                     lambda reservation: reservation["state"] == "DEDUCTED")
        assert shopper.stock(product["id"]) == 3
        cancelled = rpc.order_service.cancel_order(order["id"], "payment provider incident #42")
        assert cancelled["status"] == "CANCELLED"

    view = shopper.get(f"/orders/{order['id']}").json()
    assert view["status"] == "CANCELLED" and "our team" in view["message"]
    restored = wait_for_rpc(lambda: shopper.stock(product["id"]), lambda stock: stock == 5, timeout=40)
    assert restored == 5
    # Payment reads OrderCreated, then OrderCompleted: whatever it did first is undone.
    payment = wait_for_rpc(lambda: rpc.payment_service.get_payment(order["id"]),
                           lambda found: found["status"] in ("VOIDED", "REFUNDED"), timeout=40)
    assert payment is not None and payment["status"] in ("VOIDED", "REFUNDED"), payment
    history = rpc.order_service.get_order_with_history(order["id"])["history"]
    assert any(entry["event_type"] == "OrderCancelledByOperator"
               and entry["detail"] == {"reason": "payment provider incident #42"} for entry in history)
    found = rpc.order_service.find_orders(email=None, status="CANCELLED", limit=500)
    assert order["id"] in [each["id"] for each in found]

    with pytest.raises(RemoteError) as refused:  # a final order is not cancelled again
        rpc.order_service.cancel_order(order["id"], "again")
    assert refused.value.exc_type == "IllegalOrderTransition"
