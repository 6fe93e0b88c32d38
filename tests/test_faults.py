"""Failures on purpose, switched from the operator's shell: nothing runs behind a caller's back,
and an outage of the payment provider holds orders without losing them."""
import time

import pytest

from shop_common.errors import ValidationError


def test_a_request_the_gateway_gave_up_on_is_never_run(shopper, admin, fault_flags):
    product = admin.create_product(admin, stock=5)
    fault_flags.set_fault("rpc_extra_latency_ms", 7000, "order_service.place_order")
    time.sleep(1.5)  # every process reads the flags each second
    started = time.monotonic()
    response = shopper.place_order(product["id"])
    assert response.status_code == 503 and response.json()["error"]["code"] == "unavailable"
    assert 5 < time.monotonic() - started < 7.5  # the gateway's deadline (6 s in the test stack)
    fault_flags.clear_faults()
    time.sleep(4)  # long past the moment the delayed worker went on
    assert shopper.get("/orders").json()["items"] == []  # it found its deadline gone and placed nothing
    assert shopper.stock(product["id"]) == 5


def test_an_outage_of_the_payment_provider_holds_orders_until_it_ends(shopper, admin, rpc, fault_flags):
    product = admin.create_product(admin, stock=5)
    fault_flags.set_fault("payment_provider_error_rate", 1.0)
    assert set(fault_flags.fault_flags()["on"]) == {"payment_provider_error_rate"}
    time.sleep(1.5)
    order = shopper.place_order(product["id"]).json()
    time.sleep(4)
    assert shopper.get(f"/orders/{order['id']}").json()["status"] == "PENDING"
    assert rpc.payment_service.get_payment(order["id"])["status"] == "PROCESSING"  # retrying, not failed
    fault_flags.clear_faults()
    assert shopper.wait_for_final(order["id"], timeout=30)["status"] == "PAID"


def test_unknown_fault_flags_are_refused(fault_flags):
    with pytest.raises(ValidationError, match="free_lunch"):
        fault_flags.set_fault("free_lunch", 1)
