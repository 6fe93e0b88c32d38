"""Money in minor units of each currency, as ISO 4217 (Babel) and Stripe's limits say."""
import pytest

from shop_common.errors import ValidationError
from shop_common.money import charge_range, check_currency, format_amount, parse_amount


@pytest.mark.parametrize("text, currency, minor", [
    ("19.99", "USD", 1999), ("19.9", "USD", 1990), ("19", "USD", 1900), (19, "USD", 1900), ("0.5", "EUR", 50),
    ("1500", "JPY", 1500), (1500, "JPY", 1500),
])
def test_amounts_parse_in_the_currencys_minor_units(text, currency, minor):
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize("text, currency", [
    ("19.9\n", "USD"), ("\n19.9", "USD"), ("1.999", "USD"), ("-1", "USD"), ("1e3", "USD"), (" 1", "USD"),
    ("1.", "USD"), (".5", "USD"), ("01", "USD"), ("NaN", "USD"), ("15.5", "JPY"), (True, "USD"), (-5, "USD"),
    (1.5, "USD"), ("1000000.00", "USD"), ("100000000", "JPY"), ("१२", "USD"),
])
def test_anything_else_is_refused_naming_the_field(text, currency):
    with pytest.raises(ValidationError) as refused:
        parse_amount(text, currency, field="price")
    assert set(refused.value.details) == {"price"}


def test_amounts_format_with_the_currencys_decimals():
    assert (format_amount(1999, "USD"), format_amount(5, "EUR"), format_amount(1500, "JPY")) == ("19.99", "0.05", "1500")
    assert format_amount(-250, "GBP") == "-2.50"


def test_only_configured_currencies_are_sold():
    assert check_currency("JPY") == "JPY"
    for unsupported in ("XYZ", "usd", "", None, "BHD"):
        with pytest.raises(ValidationError):
            check_currency(unsupported)


def test_stripe_limits_per_currency():
    assert charge_range("USD") == (50, 99_999_999)
    assert charge_range("GBP")[0] == 30 and charge_range("JPY")[0] == 50
