"""OrderService entrypoints with Nameko's worker_factory (dependencies replaced)."""
import pytest
from nameko.testing.services import worker_factory

from shop_common.errors import ValidationError
from svc_order import schemas
from svc_order.service import OrderService

BODY = {"items": [{"product_id": "p1", "quantity": 2}], "payment_method": "pm_card_visa"}


def test_invalid_order_touches_no_other_service():
    service = worker_factory(OrderService)
    with pytest.raises(ValidationError):
        service.place_order("user-1", {"items": [], "payment_method": "pm"})
    service.customers.shipping_address.assert_not_called()
    service.catalog.price_lines.assert_not_called()
    service.orders.place.assert_not_called()


def test_repeated_idempotency_key_returns_the_first_order():
    service = worker_factory(OrderService)
    service.orders.find_by_idempotency_key.return_value = ({"id": "o1", "status": "PAID"}, 3)
    result = service.place_order("user-1", BODY, "key-1")
    assert result == {"order": {"id": "o1", "status": "PAID"}, "created": False}
    service.orders.find_by_idempotency_key.assert_called_once_with(
        "user-1", "key-1", schemas.request_fingerprint(BODY["items"], "pm_card_visa"))
    service.catalog.price_lines.assert_not_called()
    service.orders.place.assert_not_called()


def test_place_order_checks_availability_then_stores_and_caches():
    service = worker_factory(OrderService)
    service.orders.find_by_idempotency_key.return_value = None
    service.customers.shipping_address.return_value = {"city": "X"}
    priced = [{"product_id": "p1", "name": "P", "quantity": 2, "unit_price_cents": 500}]
    service.catalog.price_lines.return_value = (priced, "USD")
    service.orders.place.return_value = ({"id": "o2", "status": "PENDING"}, 1, True)

    result = service.place_order("user-1", BODY, "key-2")

    service.catalog.price_lines.assert_called_once_with(BODY["items"])
    service.orders.place.assert_called_once_with("user-1", priced, "USD", "pm_card_visa", {"city": "X"}, "key-2",
                                                 deadline=service.caller_deadline,
                                                 fingerprint=schemas.request_fingerprint(BODY["items"],
                                                                                         "pm_card_visa"))
    service.cache.put.assert_called_once_with({"id": "o2", "status": "PENDING"}, 1)
    assert result == {"order": {"id": "o2", "status": "PENDING"}, "created": True}


def test_every_delivery_refreshes_the_cache_a_replay_too():
    """A replay finds its inbox claim and changes nothing, but an earlier cache write may have failed."""
    service = worker_factory(OrderService)
    service.orders.apply.return_value = ({"id": "o3", "status": "PAID"}, 4, "PAID")
    service.on_payment_success({"event_id": "e1", "event_type": "PaymentSuccess", "order_id": "o3"})
    service.cache.put.assert_called_once_with({"id": "o3", "status": "PAID"}, 4)

    service.cache.put.reset_mock()
    service.orders.apply.return_value = ({"id": "o3", "status": "PAID"}, 4, None)
    service.on_payment_success({"event_id": "e1", "event_type": "PaymentSuccess", "order_id": "o3"})
    service.cache.put.assert_called_once_with({"id": "o3", "status": "PAID"}, 4)


def test_help_lists_the_operator_calls_with_their_arguments():
    calls = worker_factory(OrderService).help()
    assert "cancel_order(order_id, reason)" in calls and "our team" not in calls["cancel_order(order_id, reason)"]
    assert calls["find_orders(email=None, status=None, older_than_seconds=None, limit=50)"].startswith("orders newest")
    assert "fault_flags()" in calls  # the shared ones too
    assert not any(call.startswith(("place_order", "get_order(")) for call in calls)  # shoppers' calls are not listed


def test_an_operators_cancel_is_cached_before_the_reply():
    """The operator (or the shopper) reads the order next: the cached copy must not still say PENDING."""
    service = worker_factory(OrderService)
    service.orders.cancel.return_value = ({"id": "o4", "status": "CANCELLED"}, 5)
    assert service.cancel_order("o4", "customer called: wrong address")["status"] == "CANCELLED"
    service.cache.put_now.assert_called_once_with({"id": "o4", "status": "CANCELLED"}, 5)
    service.cache.put.assert_not_called()
