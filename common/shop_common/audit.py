"""What every operator action shares: why it was done (who comes from the call's context, shop_common.rpc.OPERATOR)."""
from shop_common import api


def reason(value):
    """Why an operator acts (cancel, refund): required, 1 to 500 characters of text (api.ActionReason)."""
    return api.parse(api.ActionReason, {"reason": value}, "invalid reason").reason
