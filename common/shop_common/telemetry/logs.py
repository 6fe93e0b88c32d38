"""Structured JSON log lines with trace id, span id and order id where there is one.

Used from every config.yaml (``LOGGING``) and by the gateway. The order id
comes from ``order_context`` (set by the Kafka entrypoint, the outbox relay
and the gateway's order routes).
"""
import contextvars
import json
import logging
import os
import re
from contextlib import contextmanager
from datetime import datetime, timezone

from shop_common.telemetry.tracing import current_ids

# The last line of defence: whatever a message or a traceback quotes (a driver's error echoing a row,
# a library's repr of a request), these never reach a log line.
REDACTIONS = (
    (re.compile(r"\$argon2[^\s'\",)}]*"), "[password-hash]"),
    (re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*"), "[token]"),
    (re.compile(r"\b(?:sk|rk)_(?:test|live)_\w+|\bwhsec_\w+"), "[secret]"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
)


def redact(text):
    for pattern, replacement in REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


_order_id = contextvars.ContextVar("shop_order_id", default=None)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


@contextmanager
def order_context(order_id):
    token = _order_id.set(order_id)
    try:
        yield
    finally:
        _order_id.reset(token)


def set_order_id(order_id):
    return _order_id.set(order_id)


class JsonFormatter(logging.Formatter):
    def __init__(self, *args, **kwargs):
        super().__init__()
        self.process_name = os.environ.get("OTEL_SERVICE_NAME")

    def format(self, record):
        line = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if self.process_name:
            line["service"] = self.process_name
        trace_id, span_id = current_ids()
        if trace_id:
            line["trace_id"], line["span_id"] = trace_id, span_id
        order_id = getattr(record, "order_id", None) or _order_id.get()
        if order_id:
            line["order_id"] = order_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value if isinstance(value, (int, float, bool, type(None))) else redact(str(value))
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


def configure_json_logging(level="INFO"):
    """For processes without a Nameko LOGGING section (the gateway)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("kafka").setLevel(logging.WARNING)
