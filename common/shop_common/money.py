"""Money is held as integer minor units (cents) and shown as "19.99"."""
import re

from shop_common.errors import ValidationError

# Digits, then at most two decimals: no exponents, signs, spaces or NaN.
AMOUNT = re.compile(r"^(0|[1-9][0-9]*)(\.[0-9]{1,2})?$")
# Stripe's largest charge for two-decimal currencies is 999,999.99, its smallest 0.50.
MAX_CENTS = 99_999_999
MIN_CHARGE_CENTS = 50


def format_cents(cents):
    sign = "-" if cents < 0 else ""
    cents = abs(int(cents))
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def parse_amount(text, field="price", max_cents=MAX_CENTS):
    """Parse "19.99" (or "19", "19.9") into cents, at most ``max_cents``."""
    if isinstance(text, bool) or not isinstance(text, (str, int)) or not AMOUNT.match(str(text)):
        raise ValidationError("invalid amount", {field: "must be a decimal string like \"19.99\""})
    units, _, fraction = str(text).partition(".")
    cents = int(units) * 100 + int(fraction.ljust(2, "0") or 0)
    if cents > max_cents:
        raise ValidationError("amount too large", {field: f"must be at most {format_cents(max_cents)}"})
    return cents
