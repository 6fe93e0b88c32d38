"""The strict edge: hostile input is a 400 naming the field before any service is called."""
import json

import pytest

from web_gateway.edge import MAX_JSON_DEPTH
from web_gateway.tests.conftest import auth

ORDER = {"items": [{"product_id": "p1", "quantity": 1}], "payment_method": "pm_card_visa"}


def post(client, path, data, **headers):
    return client.post(path, data=data, headers={"Content-Type": "application/json", **auth(), **headers})


def refused(response, field):
    assert response.status_code == 400, response.data
    error = response.json["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"], error
    return error["details"][field]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_that_are_not_json_are_refused(client, calls, constant):
    _, seen = calls
    refused(post(client, "/orders", '{"items": [{"product_id": "p1", "quantity": %s}], '
                                    '"payment_method": "pm"}' % constant), "body")
    assert seen == []


def test_deep_nesting_is_refused_however_deep(client, calls):
    _, seen = calls
    assert "nested" in refused(post(client, "/orders", "[" * 20000 + "]" * 20000), "body")
    assert "nested" in refused(post(client, "/orders", "[" * 20000), "body")  # and unclosed
    deep = {"items": ORDER["items"], "payment_method": "pm"}
    for _ in range(MAX_JSON_DEPTH):
        deep = {"x": deep}
    assert "nested" in refused(post(client, "/orders", json.dumps(deep)), "x." * (MAX_JSON_DEPTH - 1) + "x")
    assert seen == []


@pytest.mark.parametrize("text", ["a\x00b", "a\x07", "\x1b[31m", "a\x7f", "a\x85", "\ud800"])
def test_control_characters_and_lone_surrogates_are_refused_in_any_string(client, calls, text):
    _, seen = calls
    body = json.dumps({"items": [{"product_id": text, "quantity": 1}], "payment_method": "pm"})
    refused(post(client, "/orders", body), "items[0].product_id")
    refused(post(client, "/orders", json.dumps({**ORDER, "payment_method": "pm", text: 1})), repr(text))
    assert seen == []


def test_free_text_may_hold_lines(client, calls):
    answers, seen = calls
    answers[("product_service", "create_product")] = {"id": "p9"}
    body = json.dumps({"name": "Mug", "description": "line one\nline two\ttabbed\r\n"})
    response = post(client, "/products", body, **auth("admin"))
    assert response.status_code == 201
    assert seen[0][2][0]["description"] == "line one\nline two\ttabbed\r\n"


@pytest.mark.parametrize("path, field", [("/products/%00", "product_id"), ("/orders/a%0Ab", "order_id"),
                                         ("/products?q=%00", "q"), ("/products?page=1%1b", "page")])
def test_control_characters_in_paths_and_queries_are_refused(client, calls, path, field):
    _, seen = calls
    assert "control" in refused(client.get(path, headers=auth()), field)
    assert seen == []


def test_a_body_that_is_not_an_object_or_not_json(client, calls):
    refused(post(client, "/orders", "[1, 2]"), "body")
    refused(post(client, "/orders", "{"), "body")
    refused(post(client, "/orders", b"\xff\xfe"), "body")
    refused(client.post("/orders", data=json.dumps(ORDER), headers={"Content-Type": "text/plain", **auth()}),
            "body")


def test_every_answer_carries_a_request_id_and_nosniff_and_authenticated_ones_no_store(client, calls):
    answers, _ = calls
    answers[("order_service", "list_orders")] = []
    # buffered: the response is iterated and closed, ending its span, as gunicorn does before the next request
    private = client.get("/orders", headers=auth(), buffered=True)
    public = client.get("/health", buffered=True)
    for response in (private, public):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert len(response.headers["X-Request-Id"]) == 32
    assert private.headers["Cache-Control"] == "no-store"
    assert "no-store" not in public.headers.get("Cache-Control", "")
    assert private.headers["X-Request-Id"] != public.headers["X-Request-Id"]


def test_a_wrong_method_says_which_are_allowed(client):
    response = client.open("/orders", method="TRACE", headers=auth())
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert response.json["error"]["code"] == "method_not_allowed"
