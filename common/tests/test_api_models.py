"""The REST request models: what they refuse, and how a refusal names the fields."""
import pytest

from shop_common.errors import ValidationError
from shop_common.http import api

ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}


def refused(model, data, **context):
    with pytest.raises(ValidationError) as error:
        api.parse(model, data, **context)
    return error.value.details


def test_fields_are_named_as_a_client_wrote_them():
    details = refused(api.NewOrder, {"items": [{"product_id": "p", "quantity": 1}, {"product_id": "q"}]})
    assert set(details) == {"items[1].quantity", "payment_method"}
    assert set(refused(api.Registration, {"email": "a@b.co", "password": "x" * 8, "name": "n",
                                          "address": {"line1": "x"}})) == {"address.city", "address.postal_code",
                                                                           "address.country"}
    assert refused(api.NewOrder, []) == {"body": "must be an object"}


@pytest.mark.parametrize("model, data, field", [
    (api.NewOrder, {"items": [{"product_id": "p\x00", "quantity": 1}], "payment_method": "pm"}, "items[0].product_id"),
    (api.ProfileChanges, {"name": "Ann\x00"}, "name"),
    (api.PageQuery, {"q": "\x00"}, "q"),
])
def test_nul_characters_are_refused_everywhere(model, data, field):
    assert field in refused(model, data)


@pytest.mark.parametrize("quantity", [True, "2", 2.5, 0, 1001, None])
def test_quantities_are_whole_numbers_from_json_only(quantity):
    assert "items[0].quantity" in refused(api.NewOrder, {"items": [{"product_id": "p", "quantity": quantity}],
                                                         "payment_method": "pm"})


def test_a_whole_number_written_with_a_fraction_is_that_number():
    """2.0 is the integer 2 to JSON Schema (what the published contract says), so the server agrees."""
    order = api.parse(api.NewOrder, {"items": [{"product_id": "p", "quantity": 2.0}], "payment_method": "pm"})
    assert order.items[0].quantity == 2 and type(order.items[0].quantity) is int


@pytest.mark.parametrize("model, data, field", [
    (api.ProfileChanges, {}, "body"),
    (api.ProfileChanges, {"name": None}, "name"),
    (api.ProductChanges, {"price": None}, "price"),
    (api.NewOrder, {"items": [{"product_id": "p", "quantity": 1}], "payment_method": "pm", "coupon": "x"}, "coupon"),
    (api.Registration, {"email": "a@b.co", "password": "long enough", "name": "   ",
                        "address": {"line1": "1", "city": "c", "postal_code": "p", "country": "US"}}, "name"),
    (api.ProfileChanges, {"preferences": {"nested": {"a": 1}}}, "preferences.nested"),
])
def test_what_the_json_schema_forbids_the_model_refuses(model, data, field):
    """Nothing empty to change, no null to empty a field, no unknown field, no blank text, flat preferences."""
    assert field in refused(model, data)


def test_passwords_are_kept_exactly_as_typed_and_other_text_is_trimmed():
    registration = api.parse(api.Registration, {"email": " a@b.co ", "password": "  spaced  ", "name": " Ann ",
                                                "address": ADDRESS})
    assert (registration.email, registration.password, registration.name) == ("a@b.co", "  spaced  ", "Ann")


def test_a_price_is_checked_against_its_currency():
    assert "price" in refused(api.NewProduct, {"sku": "A", "name": "x", "price": "15.50", "currency": "JPY",
                                               "stock": 1})
    assert api.parse(api.NewProduct, {"sku": "A", "name": "x", "price": "1500", "currency": "JPY", "stock": 1})
    assert set(refused(api.NewProduct, {"sku": "A", "name": "x", "price": "1.5", "currency": "XTS",
                                        "stock": 1})) == {"currency"}  # no second error about the price
    assert "price" in refused(api.ProductChanges, {"price": "1.999"}, currency="USD")
    assert api.parse(api.ProductChanges, {"price": "1.99"}, currency="USD").price == "1.99"


def test_a_partial_update_refuses_fields_it_does_not_know():
    assert set(refused(api.ProductChanges, {"sku": "new"}, currency="USD")) == {"sku"}
    assert set(refused(api.ProfileChanges, {"email": "x@y.zz"})) == {"email"}


@pytest.mark.parametrize("reason, detail", [
    ("", "must not be blank"), ("   ", "must not be blank"), ("x" * 501, "at most 500 characters"),
    ("a\x00b", "must not contain control characters"), (None, "Input should be a valid string"),
])
def test_an_operator_s_reason_is_checked_by_the_same_rule_as_the_admin_s(reason, detail):
    from shop_common import audit

    with pytest.raises(ValidationError) as error:
        audit.reason(reason)
    assert error.value.details == {"reason": detail}
    assert audit.reason("  provider incident #42 ") == "provider incident #42"
