"""The order state machine and order input validation: no infrastructure."""
import itertools

import pytest

from shop_common.errors import IllegalOrderTransition, ValidationError
from svc_order import schemas
from svc_order.models import Order, OrderStatus, message_for

FACT_OUTCOMES = [
    # (stock fact, payment fact, final status whichever arrives first)
    ("record_stock_deducted", "record_payment_succeeded", {OrderStatus.PAID}),
    ("record_stock_deducted", "record_payment_failed", {OrderStatus.PAYMENT_FAILED}),
    ("record_stock_unavailable", "record_payment_succeeded", {OrderStatus.CANCELLED}),
    # Both decisive: the first to arrive decides, and it stays decided.
    ("record_stock_unavailable", "record_payment_failed", {OrderStatus.CANCELLED, OrderStatus.PAYMENT_FAILED}),
]


@pytest.mark.parametrize("stock_fact, payment_fact, allowed", FACT_OUTCOMES)
def test_final_status_does_not_depend_on_arrival_order(stock_fact, payment_fact, allowed):
    finals = set()
    for first, second in itertools.permutations([stock_fact, payment_fact]):
        order = Order(OrderStatus.PENDING, "PENDING", "PENDING")
        getattr(order, first)()
        status_after_first = order.status
        getattr(order, second)()
        if status_after_first != OrderStatus.PENDING:
            assert order.status == status_after_first  # a final status never changes
        finals.add(order.status)
    assert finals <= allowed and finals


def test_one_fact_alone_settles_only_when_decisive():
    order = Order(OrderStatus.PENDING, "PENDING", "PENDING")
    order.record_stock_deducted()
    assert order.status == OrderStatus.PENDING
    order = Order(OrderStatus.PENDING, "PENDING", "PENDING")
    order.record_payment_succeeded()
    assert order.status == OrderStatus.PENDING
    order.record_stock_deducted()
    assert order.status == OrderStatus.PAID


def test_illegal_transition_is_a_named_error():
    order = Order(OrderStatus.PAID, "DEDUCTED", "SUCCEEDED")
    with pytest.raises(IllegalOrderTransition) as error:
        order._finish(OrderStatus.CANCELLED)
    assert error.value.details == {"from": "PAID", "to": "CANCELLED"}


def test_valid_order_request():
    lines, payment_method = schemas.order_request(
        {"items": [{"product_id": "a", "quantity": 2}, {"product_id": "b", "quantity": 1}],
         "payment_method": " pm_card_visa "})
    assert lines == [{"product_id": "a", "quantity": 2}, {"product_id": "b", "quantity": 1}]
    assert payment_method == "pm_card_visa"


def test_lines_of_one_product_add_up_in_the_order_each_first_appears():
    lines, _ = schemas.order_request({"items": [{"product_id": "b", "quantity": 1}, {"product_id": "a", "quantity": 2},
                                                {"product_id": "b", "quantity": 3}], "payment_method": "pm"})
    assert lines == [{"product_id": "b", "quantity": 4}, {"product_id": "a", "quantity": 2}]


@pytest.mark.parametrize("body, field", [
    ([], "body"),
    ({"payment_method": "pm"}, "items"),
    ({"items": "x", "payment_method": "pm"}, "items"),
    ({"items": [{"product_id": "a", "quantity": True}], "payment_method": "pm"}, "items[0].quantity"),
    ({"items": [{"product_id": "a", "quantity": 1.5}], "payment_method": "pm"}, "items[0].quantity"),
    ({"items": [{"quantity": 1}], "payment_method": "pm"}, "items[0].product_id"),
    ({"items": [{"product_id": "a", "quantity": 1}], "payment_method": ""}, "payment_method"),
])
def test_invalid_order_requests(body, field):
    with pytest.raises(ValidationError) as error:
        schemas.order_request(body)
    assert field in error.value.details


def test_idempotency_key_bounds():
    assert schemas.idempotency_key(None) is None
    assert schemas.idempotency_key("abc") == "abc"
    with pytest.raises(ValidationError):
        schemas.idempotency_key("x" * 201)


def test_an_unpaid_order_is_settled_only_when_stock_and_money_are_back():
    order = Order(OrderStatus.PENDING, "PENDING", "PENDING")
    order.record_stock_deducted()
    order.record_payment_failed()
    assert order.status == OrderStatus.PAYMENT_FAILED and not order.is_settled  # the stock is still out
    order.record_stock_restored()
    assert order.is_settled
    paid = Order(OrderStatus.PENDING, "DEDUCTED", "PENDING")
    paid.record_payment_succeeded()
    assert paid.is_settled


def test_the_deadline_cancels_only_a_pending_order_and_says_why():
    order = Order(OrderStatus.PENDING, "DEDUCTED", "PENDING")
    order.cancel("deadline")
    assert order.status == OrderStatus.CANCELLED and "in time" in order.message
    assert not order.is_settled  # until the stock is back and the payment voided or refunded
    with pytest.raises(IllegalOrderTransition):
        Order(OrderStatus.PAID, "DEDUCTED", "SUCCEEDED").cancel("deadline")
    sold_out = Order(OrderStatus.PENDING, "PENDING", "PENDING")
    sold_out.record_stock_unavailable()
    assert "sold out" in sold_out.message


def test_an_order_waiting_for_3ds_asks_the_shopper_to_confirm_then_ends_as_usual():
    order = Order(OrderStatus.PENDING, "DEDUCTED", "PENDING")
    order.record_payment_action_required()
    assert order.payment_status == "REQUIRES_ACTION" and "confirm the payment" in order.message
    order.record_payment_succeeded()
    assert order.status == OrderStatus.PAID and order.message == message_for(OrderStatus.PAID)
    order.record_payment_action_required()  # a late notice changes nothing
    assert order.payment_status == "SUCCEEDED"


def test_one_product_s_lines_may_not_add_up_past_the_limit():
    with pytest.raises(ValidationError) as refused:
        schemas.order_request({"items": [{"product_id": "a", "quantity": 600}, {"product_id": "b", "quantity": 1},
                                         {"product_id": "a", "quantity": 401}], "payment_method": "pm"})
    assert refused.value.details == {"items[2].quantity": "one product's lines add up to at most 1000"}
