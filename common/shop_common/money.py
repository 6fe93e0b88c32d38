"""Money: integer minor units (cents, yen, ...) inside, a decimal string ("19.99", "1500") outside.

How many decimals a currency has is ISO 4217's word, read from Babel's CLDR
data, never assumed to be two. The shop sells in the currencies configured in
``SHOP_CURRENCIES`` only, each with Stripe's minimum charge (Stripe's table,
https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts) and its
maximum (eight digits of minor units). Columns named ``*_cents`` hold minor
units of the row's currency.
"""
import os
import re

from babel.numbers import get_currency_precision

from shop_common.errors import ValidationError

# Stripe's minimum charge per currency, in minor units; a currency missing here cannot be configured.
STRIPE_MIN_CHARGE = {
    "USD": 50, "EUR": 50, "GBP": 30, "CHF": 50, "CAD": 50, "AUD": 50, "NZD": 50, "SEK": 300, "NOK": 300,
    "DKK": 250, "PLN": 200, "CZK": 1500, "JPY": 50, "SGD": 50, "HKD": 400, "MXN": 1000,
}
STRIPE_MAX_CHARGE = 99_999_999  # eight digits of minor units
CURRENCIES = tuple(code.strip().upper() for code in os.environ.get("SHOP_CURRENCIES", "USD,EUR,GBP,JPY").split(",")
                   if code.strip())
_unknown = [code for code in CURRENCIES if code not in STRIPE_MIN_CHARGE]
if _unknown:
    raise RuntimeError(f"SHOP_CURRENCIES has currencies without Stripe's minimum charge here: {_unknown}")
DEFAULT_CURRENCY = CURRENCIES[0]
# Digits, then an optional fraction: no signs, exponents, spaces, NaN or trailing newline.
AMOUNT = re.compile(r"(0|[1-9][0-9]{0,11})(?:\.([0-9]+))?")


def decimals(currency):
    return get_currency_precision(currency)


def check_currency(currency, field="currency"):
    """The currency if the shop sells in it, else a ValidationError naming the field."""
    if not isinstance(currency, str) or currency not in CURRENCIES:
        raise ValidationError("unsupported currency", {field: f"must be one of {', '.join(CURRENCIES)}"})
    return currency


def format_amount(minor, currency):
    """1999, "USD" -> "19.99"; 1500, "JPY" -> "1500"."""
    digits = decimals(currency)
    sign = "-" if minor < 0 else ""
    units, fraction = divmod(abs(int(minor)), 10 ** digits)
    return f"{sign}{units}.{fraction:0{digits}d}" if digits else f"{sign}{units}"


def parse_amount(text, currency, field="price"):
    """A decimal string (or whole number) in ``currency`` -> minor units, at most Stripe's maximum."""
    digits = decimals(currency)
    match = AMOUNT.fullmatch(text) if isinstance(text, str) else None
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        match = AMOUNT.fullmatch(str(text))
    if match is None or len(match.group(2) or "") > digits:
        shape = f"a decimal string with at most {digits} decimals" if digits else "a whole number"
        raise ValidationError("invalid amount", {
            field: f"must be {shape} in {currency}, like \"{format_amount(1999, currency)}\""})
    units, fraction = match.group(1), (match.group(2) or "")
    minor = int(units) * 10 ** digits + int(fraction.ljust(digits, "0") or 0)
    if minor > STRIPE_MAX_CHARGE:
        raise ValidationError("amount too large", {
            field: f"must be at most {format_amount(STRIPE_MAX_CHARGE, currency)}"})
    return minor


def charge_range(currency):
    """(smallest, largest) amount Stripe charges in ``currency``, in minor units."""
    return STRIPE_MIN_CHARGE[currency], STRIPE_MAX_CHARGE
