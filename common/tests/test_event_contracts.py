"""The committed event schemas match the models, and no version changed incompatibly; versions up- and downcast."""
import json
import subprocess
from pathlib import Path
from typing import Optional

import pytest
from pydantic import Field

from shop_common import testing
from shop_common.messaging import event_contracts, events

REPO = Path(__file__).resolve().parents[2]


def test_every_committed_schema_matches_its_model():
    assert event_contracts.stale() == [], "a payload model changed: run `make contracts` and commit the schemas"


def _git(*args):
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout


def test_no_published_schema_changed_incompatibly():
    """Every version of each schema file ever committed can be read by today's model (and the reverse)."""
    compared = 0
    for path in sorted(event_contracts.CONTRACTS_DIR.glob("*.json")):
        relative = path.relative_to(REPO).as_posix()
        current = json.loads(path.read_text())
        # --follow: the schemas moved (shop_common/contracts -> shop_common/messaging/contracts).
        history = _git("log", "--follow", "--format=%H", "--name-only", "--", relative).split()
        for commit, path_then in zip(history[::2], history[1::2]):
            published = json.loads(_git("show", f"{commit}:{path_then}"))
            assert event_contracts.incompatibilities(published, current) == [], (relative, commit)
            compared += 1
    assert compared >= len(events.PAYLOADS) - 1  # all but a schema not committed yet


def schema(model):
    return model.model_json_schema()


def test_the_checker_refuses_removed_retyped_and_newly_required_fields_and_allows_optional_ones():
    class NewOptional(events.OrderCompletedV1):
        note: Optional[str] = None

    class Retyped(events.OrderCompletedV1):
        user_id: int

    class NewRequired(events.OrderCompletedV1):
        note: str

    class Removed(events.PaymentVoidedV1):  # OrderCompleted less user_id, status and reason
        pass

    class NestedRetyped(events.OrderCreatedV2):
        total: events.StockLine  # same name, another shape

    old = schema(events.OrderCompletedV1)
    assert event_contracts.incompatibilities(old, schema(NewOptional)) == []
    assert event_contracts.incompatibilities(old, schema(Retyped)) == ["payload.user_id: type ['string'] became "
                                                                       "['integer']"]
    assert event_contracts.incompatibilities(old, schema(NewRequired)) == ["payload.note: now required"]
    assert set(event_contracts.incompatibilities(old, schema(Removed))) == {
        "payload.user_id: removed", "payload.status: removed", "payload.reason: removed"}
    assert "payload.total.amount_minor: removed" in event_contracts.incompatibilities(
        schema(events.OrderCreatedV2), schema(NestedRetyped))


def test_make_contracts_refuses_an_incompatible_change_within_a_version(tmp_path, monkeypatch, capsys):
    class Retyped(events.OrderCompletedV1):
        user_id: int

    assert event_contracts.write(tmp_path) == 0
    before = (tmp_path / "OrderCompleted.v1.json").read_text()
    monkeypatch.setitem(events.PAYLOADS, (events.ORDER_COMPLETED, 1), Retyped)
    assert event_contracts.write(tmp_path) == 1
    assert "OrderCompleted.v1.json: incompatible change" in capsys.readouterr().err
    assert (tmp_path / "OrderCompleted.v1.json").read_text() == before


def test_a_model_changed_without_regenerating_is_reported_stale():
    class NewOptional(events.OrderCompletedV1):
        note: Optional[str] = Field(default=None, max_length=10)

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(events.PAYLOADS, (events.ORDER_COMPLETED, 1), NewOptional)
        assert "OrderCompleted.v1.json" in event_contracts.stale()


def v1_order_created(order_id="o-1"):
    return events.new_event(events.ORDER_CREATED, {
        "order_id": order_id, "user_id": "u1", "payment_method": "pm_card_visa", "currency": "EUR",
        "items": [{"product_id": "p1", "quantity": 2, "unit_price_cents": 250},
                  {"product_id": "p2", "quantity": 1, "unit_price_cents": 100}],
        "total_cents": 600}, order_id=order_id, version=1)


def test_a_v1_order_created_is_read_as_v2():
    event = events.decode(events.encode(v1_order_created()))
    assert event["event_version"] == 2
    order = events.payload_of(event)
    assert order.total == events.Money(amount_minor=600, currency="EUR")
    assert [line.unit_price.amount_minor for line in order.items] == [250, 100]
    assert order.lines() == [("p1", 2), ("p2", 1)]


def test_a_producer_held_at_v1_sends_what_v1_readers_expect():
    latest = testing.order_created([("b", 1), ("a", 3)], unit_price_cents=125, currency="GBP")
    held = events.as_version(latest, 1)
    assert held["event_version"] == 1
    assert held["payload"]["total_cents"] == 500 and held["payload"]["currency"] == "GBP"
    assert held["payload"]["items"][0] == {"product_id": "b", "quantity": 1, "unit_price_cents": 125}
    assert events.decode(events.encode(held))["payload"] == latest["payload"]  # and back, losing nothing


@pytest.mark.parametrize("change, why", [
    (lambda payload: payload["items"][0]["unit_price"].update(currency="EUR"), "order's currency"),
    (lambda payload: payload["total"].update(amount_minor=1), "sum of the lines"),
])
def test_a_v2_order_created_that_does_not_add_up_is_malformed(change, why):
    event = testing.order_created([("p1", 2)])
    change(event["payload"])
    with pytest.raises(events.MalformedEvent, match=why):
        events.decode(events.encode(event))


def test_a_version_newer_than_any_known_is_malformed():
    event = dict(testing.order_created(), event_version=3)
    with pytest.raises(events.MalformedEvent, match="unknown version 3"):
        events.decode(events.encode(event))
