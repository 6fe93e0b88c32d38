"""Money is held as integer minor units (cents) and shown as "19.99"."""
from decimal import Decimal, InvalidOperation

from shop_common.errors import ValidationError


def format_cents(cents):
    sign = "-" if cents < 0 else ""
    cents = abs(int(cents))
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def parse_amount(text, field="price"):
    """Parse a decimal string with at most two places into cents."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValidationError("invalid amount", {field: "must be a decimal string like \"19.99\""})
    try:
        amount = Decimal(str(text))
    except InvalidOperation:
        raise ValidationError("invalid amount", {field: "must be a decimal string like \"19.99\""})
    if not amount.is_finite() or amount < 0 or amount.as_tuple().exponent < -2:
        raise ValidationError("invalid amount", {field: "must be non-negative with at most two decimal places"})
    return int(amount * 100)
