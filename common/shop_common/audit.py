"""What every operator action shares: why it was done (who comes from the call's context,
shop_common.rpc.OPERATOR), and where an action on the shop as a whole is recorded.

An action on one order, payment, product or stock level is recorded with that record, in its
owner's database (the order's history, the payment, the product's history, the stock ledger). Fault
flags and dead-letter replays belong to no service's data: they go to the shop's audit stream in
Redis (``shop:audit``, the latest AUDIT_KEPT entries), which every service reads back with
``audit_log()``.
"""
import json
from datetime import datetime, timezone

from shop_common.http import api

AUDIT_STREAM = "shop:audit"
AUDIT_KEPT = 10_000


def reason(value):
    """Why an operator acts (cancel, refund): required, 1 to 500 characters of text (api.ActionReason)."""
    return api.parse(api.ActionReason, {"reason": value}, "invalid reason").reason


def history_limit(limit):
    """How many entries an operator's history call returns (stock ledger, product history, audit log)."""
    return max(1, min(int(limit), 1000))


def record(redis_client, by, action, detail, result):
    """Add an operator's action on the shop as a whole to the audit stream."""
    redis_client.xadd(AUDIT_STREAM, {
        "at": datetime.now(timezone.utc).isoformat(), "by": by, "action": action,
        "detail": json.dumps(detail, default=str), "result": json.dumps(result, default=str),
    }, maxlen=AUDIT_KEPT, approximate=True)


def entries(redis_client, limit):
    """The latest ``limit`` entries of the audit stream, newest first."""
    return [{"id": entry_id.decode(), **{key.decode(): value.decode() for key, value in fields.items()}}
            for entry_id, fields in redis_client.xrevrange(AUDIT_STREAM, count=limit)]
