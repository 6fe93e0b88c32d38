"""The operator's calls on a live shop: cancel a stuck order, find orders, refund by hand, the shell."""
import subprocess
import time
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue

from shop_common.errors import IllegalOrderTransition, IllegalPaymentTransition

ROOT = Path(__file__).resolve().parents[1]


def test_an_operator_cancels_a_stuck_order_and_everything_is_given_back(shop, shopper, admin, rpc, wait_for_rpc,
                                                                         operator, stripe_client):
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
    # Payment, released, reads OrderCreated (and charges), then OrderCompleted: the charge that landed
    # after the cancellation is refunded, once.
    payment = wait_for_rpc(lambda: rpc.payment_service.get_payment(order["id"]),
                           lambda found: found["status"] == "REFUNDED", timeout=40)
    assert payment is not None and payment["status"] == "REFUNDED", payment
    refunds = stripe_client.v1.refunds.list(params={"payment_intent": payment["intent_id"]}).data
    assert [(refund.status, refund.amount) for refund in refunds] == [("succeeded", 2000)]
    history = rpc.order_service.get_order_with_history(order["id"])["history"]
    assert any(entry["event_type"] == "OrderCancelledByOperator"
               and entry["detail"] == {"reason": "payment provider incident #42", "by": operator}
               for entry in history)
    found = rpc.order_service.find_orders(email=None, status="CANCELLED", limit=500)
    assert order["id"] in [each["id"] for each in found]

    with pytest.raises(IllegalOrderTransition):  # a final order is not cancelled again
        rpc.order_service.cancel_order(order["id"], "again")


def test_a_refund_by_hand_is_made_once_and_the_order_history_says_who_and_why(shopper, admin, rpc, stripe_client,
                                                                             wait_for_payment, wait_for_rpc, operator):
    product = admin.create_product(admin, stock=2)
    order = shopper.place_order(product["id"]).json()
    assert shopper.wait_for_final(order["id"])["status"] == "PAID"
    payment = rpc.payment_service.refund(order["id"], "customer returned it")
    assert payment["refund_requested_by"] == operator
    refunded = wait_for_payment(order["id"], ("REFUNDED",))
    refunds = stripe_client.v1.refunds.list(params={"payment_intent": refunded["intent_id"]}).data
    assert [(refund.status, refund.amount) for refund in refunds] == [("succeeded", 1000)]
    history = wait_for_rpc(lambda: rpc.order_service.get_order_with_history(order["id"])["history"],
                           lambda entries: any(entry["event_type"] == "PaymentRefunded" for entry in entries))
    entry = next(entry for entry in history if entry["event_type"] == "PaymentRefunded")
    assert (entry["detail"]["reason"], entry["detail"]["requested_by"]) == ("customer returned it", operator)
    with pytest.raises(IllegalPaymentTransition):  # refunded already: nothing to refund
        rpc.payment_service.refund(order["id"], "again")
    view = rpc.payment_service.stripe_view(order["id"])
    assert view["recorded"]["status"] == "REFUNDED" and view["stripe"]["status"] == "succeeded"
    assert "client_secret" not in view["stripe"]


def test_the_shell_lists_the_operator_calls_and_gives_up_on_a_hung_service(shop):
    """`make shell`'s start-up: every service's operator calls, and a timeout instead of a hang (a service
    whose queue exists with nobody consuming it, as after a crash)."""
    with Connection(shop.env["AMQP_URI"].replace("pyamqp", "amqp")) as connection:
        ghost = Queue("rpc-ghost_service", Exchange("nameko-rpc", type="topic", durable=True),
                      routing_key="ghost_service.*", durable=False, auto_delete=False)
        ghost(connection.default_channel).declare()
        try:
            script = ("print('HEALTH', n.rpc.order_service.health()['status'])\n"
                      "import time\nstarted = time.monotonic()\n"
                      "try:\n    n.rpc.ghost_service.health()\n"
                      "except Exception as exc:\n    print('GHOST', type(exc).__name__, round(time.monotonic() - started))\n\n")
            env = dict(shop.env, PYTHONSTARTUP=str(ROOT / "ops" / "shell.py"), SHOP_OPERATOR="alice",
                       SHOP_SHELL_TIMEOUT_SECONDS="2")
            started = time.monotonic()
            shell = subprocess.run([str(ROOT / ".venv" / "bin" / "nameko"), "shell", "--config",
                                    str(ROOT / "svc_order" / "config.yaml")], input=script, env=env,
                                   capture_output=True, text=True, timeout=60)
        finally:
            ghost(connection.default_channel).delete()
    out = shell.stdout
    assert "as 'alice'" in out, shell.stderr[-2000:]
    assert "n.rpc.order_service.cancel_order(order_id, reason)" in out
    assert "n.rpc.payment_service.refund(order_id, reason)" in out
    assert "n.rpc.payment_service.reconcile(since, grace_seconds=" in out
    assert "HEALTH ok" in out
    assert "GHOST RpcTimeout 2" in out, out[-1000:] + shell.stderr[-1000:]
    assert time.monotonic() - started < 45


def test_the_admin_finds_inspects_and_cancels_a_customers_order_over_rest(shop, api, admin, shopper, rpc, wait_for_rpc):
    product = admin.create_product(admin, stock=4)
    me = shopper.get("/users/me").json()
    with shop.held("svc_payment"):  # stuck: stock deducted, no payment outcome
        order = shopper.place_order(product["id"]).json()
        wait_for_rpc(lambda: rpc.inventory_service.get_reservation(order["id"]),
                     lambda reservation: reservation["state"] == "DEDUCTED")
        # Inventory has deducted; the Order service records its StockUpdated a moment later.
        wait_for_rpc(lambda: rpc.order_service.get_order_with_history(order["id"])["history"],
                     lambda history: "StockUpdated" in [entry["event_type"] for entry in history])
        found = admin.get(f"/admin/orders?email={me['email']}&status=PENDING").json()["items"]
        assert [each["id"] for each in found] == [order["id"]]
        assert admin.get("/admin/orders?email=nobody@example.com").json() == {"items": []}
        assert admin.get("/admin/orders?older_than=soon").status_code == 400
        assert shopper.get("/admin/orders").status_code == 403  # staff only
        assert api.get(f"/admin/orders/{order['id']}").status_code == 401

        detail = admin.get(f"/admin/orders/{order['id']}").json()
        assert detail["order"]["id"] == order["id"] and detail["reservation"]["state"] == "DEDUCTED"
        assert "StockUpdated" in [entry["event_type"] for entry in detail["history"]]
        # Payment is held (SIGSTOP): its part is missing, named, and the rest of the view is there.
        assert detail["payment"] is None and detail["unavailable"] == ["payment_service"]
        assert admin.post(f"/admin/orders/{order['id']}/cancel", json={}).status_code == 400  # a reason is required
        cancelled = admin.post(f"/admin/orders/{order['id']}/cancel", json={"reason": "customer phoned"})
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    again = admin.post(f"/admin/orders/{order['id']}/cancel", json={"reason": "twice"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "illegal_transition"
    assert admin.get("/admin/orders/00000000-0000-0000-0000-000000000000").status_code == 404
    admin_id = admin.get("/users/me").json()["id"]
    history = rpc.order_service.get_order_with_history(order["id"])["history"]
    assert {"reason": "customer phoned", "by": f"admin:{admin_id}"} in [entry["detail"] for entry in history]
    assert wait_for_rpc(lambda: shopper.stock(product["id"]), lambda stock: stock == 4, timeout=40) == 4


def test_stock_adjusted_as_a_delta_while_orders_deduct_loses_no_update(api, admin, rpc, operator):
    from concurrent.futures import ThreadPoolExecutor

    product = admin.create_product(admin, stock=10)
    shoppers = [api.new_shopper()[0] for _ in range(5)]
    with ThreadPoolExecutor(10) as pool:
        orders = [pool.submit(shopper.place_order, product["id"]) for shopper in shoppers]
        deliveries = [pool.submit(admin.post, f"/admin/products/{product['id']}/stock",
                                  json={"delta": 2, "reason": "delivery"}) for _ in range(5)]
    placed = [(shopper, each.result().json()) for shopper, each in zip(shoppers, orders)]
    assert all(each.result().status_code == 200 for each in deliveries)
    assert all(shopper.wait_for_final(order["id"])["status"] == "PAID" for shopper, order in placed)
    assert admin.stock(product["id"]) == 10 - 5 + 10  # the cached product was invalidated too

    removed = rpc.inventory_service.adjust_stock(product["id"], -15, "stocktake: shelf empty")
    assert removed["stock_after"] == 0 and removed["by"] == operator
    too_many = admin.post(f"/admin/products/{product['id']}/stock", json={"delta": -1, "reason": "recount"})
    assert too_many.status_code == 409 and too_many.json()["error"]["code"] == "insufficient_stock"
    for bad in ({"delta": 0, "reason": "x"}, {"delta": "3", "reason": "x"}, {"delta": 3}):
        response = admin.post(f"/admin/products/{product['id']}/stock", json=bad)
        assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    missing = admin.post("/admin/products/00000000-0000-0000-0000-000000000000/stock",
                         json={"delta": 1, "reason": "x"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "product_not_found"

    ledger = admin.get(f"/admin/products/{product['id']}/stock").json()["items"]
    admin_id = admin.get("/users/me").json()["id"]
    assert [(entry["delta"], entry["by"]) for entry in ledger] == \
        [(-15, operator)] + [(2, f"admin:{admin_id}")] * 5 + [(10, f"admin:{admin_id}")]  # the opening stock


def test_a_hidden_product_leaves_the_catalogue_and_cannot_be_ordered_until_shown_again(admin, shopper, rpc):
    product = admin.create_product(admin, stock=3)
    listed = lambda: [item["id"] for item in shopper.get(f"/products?q={product['sku']}").json()["items"]]  # noqa: E731
    assert listed() == [product["id"]]
    hidden = admin.patch(f"/products/{product['id']}", json={"active": False})
    assert hidden.status_code == 200 and hidden.json()["active"] is False
    assert listed() == []
    refused = shopper.place_order(product["id"])
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "product_not_found"
    assert admin.patch(f"/products/{product['id']}", json={"active": "no"}).status_code == 400
    admin.patch(f"/products/{product['id']}", json={"active": True})
    assert listed() == [product["id"]]
    assert shopper.place_order(product["id"]).status_code == 202
    # Who hid it and showed it again, in the product's history (the refused change left nothing).
    admin_id = admin.get("/users/me").json()["id"]
    history = rpc.product_service.product_history(product["id"])["items"]
    assert [(entry["action"], entry["by"], entry["before"], entry["after"]) for entry in history[:2]] == [
        ("changed", f"admin:{admin_id}", {"active": False}, {"active": True}),
        ("changed", f"admin:{admin_id}", {"active": True}, {"active": False})]
    created = history[2:]
    assert [(entry["action"], entry["by"], entry["after"]["sku"]) for entry in created] == [
        ("created", f"admin:{admin_id}", product["sku"])]
