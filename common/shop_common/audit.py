"""What every operator action shares: why it was done (who comes from the call's context, shop_common.rpc.OPERATOR)."""
from shop_common.errors import ValidationError


def reason(value):
    """Why an operator acts (cancel, refund): required, kept with the record it changes."""
    if not isinstance(value, str) or not value.strip() or len(value) > 500 or "\x00" in value:
        raise ValidationError("invalid reason", {"reason": "must be 1 to 500 characters"})
    return value.strip()
