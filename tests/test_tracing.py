"""One order, one trace: every hop from the gateway to the outcome, collected over OTLP."""
import secrets
import time

EXPECTED_HOPS = {
    ("web_gateway", "POST /orders"),
    ("svc_order", "order_service.place_order"),
    ("svc_user", "user_service.get_user"),
    ("svc_product", "product_service.check_availability"),
    ("svc_order", "publish OrderCreated"),
    ("svc_inventory", "inventory_service.on_order_created"),
    ("svc_payment", "payment_service.on_order_created"),
    ("svc_inventory", "publish StockUpdated"),
    ("svc_payment", "publish PaymentSuccess"),
    ("svc_order", "order_service.on_stock_updated"),
    ("svc_order", "order_service.on_payment_success"),
}


def _wait_for_hops(otlp, trace_id, caller_span, timeout=20):
    """The trace once every expected hop is in and every span's parent too: processes export in batches,
    so a child (say Inventory's handling of OrderCompleted) can arrive before the span that published it."""
    deadline = time.monotonic() + timeout
    while True:
        spans = otlp.trace(trace_id)
        ids = {span.span_id for span in spans}
        complete = EXPECTED_HOPS <= {(span.service, span.name) for span in spans} and all(
            span.parent_id == caller_span or span.parent_id in ids for span in spans)
        if complete or time.monotonic() > deadline:
            return spans
        time.sleep(0.2)


def test_the_whole_life_of_an_order_is_one_trace(shopper, admin, otlp):
    product = admin.create_product(admin, stock=3)
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    response = shopper.place_order(product["id"], headers={"traceparent": f"00-{trace_id}-{caller_span}-01"})
    assert response.status_code == 202
    assert shopper.wait_for_final(response.json()["id"])["status"] == "PAID"

    spans = _wait_for_hops(otlp, trace_id, caller_span)
    hops = {(span.service, span.name) for span in spans}
    assert EXPECTED_HOPS <= hops, f"missing: {EXPECTED_HOPS - hops}"

    by_id = {span.span_id: span for span in spans}
    for span in spans:  # parent-child all the way: no orphan, one root under the caller
        assert span.parent_id == caller_span or span.parent_id in by_id, span

    def first(service, name):
        return next(span for span in spans if (span.service, span.name) == (service, name))

    def ancestors(span):
        chain = []
        while span.parent_id in by_id:
            span = by_id[span.parent_id]
            chain.append((span.service, span.name))
        return chain

    gateway = first("web_gateway", "POST /orders")
    assert gateway.parent_id == caller_span
    assert ("web_gateway", "POST /orders") in ancestors(first("svc_user", "user_service.get_user"))
    # Kafka hops: each consumer's span descends from the producer's publish span.
    assert ("svc_order", "publish OrderCreated") in ancestors(first("svc_inventory", "inventory_service.on_order_created"))
    assert ("svc_order", "publish OrderCreated") in ancestors(first("svc_payment", "payment_service.on_order_created"))
    outcome = ancestors(first("svc_order", "order_service.on_payment_success"))
    assert ("svc_payment", "publish PaymentSuccess") in outcome
    assert ("svc_order", "order_service.place_order") in outcome
