"""Structured JSON log lines with trace id, span id and order id where there is one.

Used from every config.yaml (``LOGGING``) and by the gateway. The order id
comes from ``order_context`` (set by the Kafka entrypoint, the outbox relay
and the gateway's order routes).
"""
import contextvars
import logging
import os
import re
from contextlib import contextmanager
from datetime import datetime, timezone

from pythonjsonlogger import json as jsonlogger

from shop_common.telemetry.tracing import current_ids

# The last line of defence: whatever a message or a traceback quotes (a driver's error echoing a row,
# a library's repr of a request), these never reach a log line.
REDACTIONS = (
    (re.compile(r"\$argon2[^\s'\",)}]*"), "[password-hash]"),
    (re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*"), "[token]"),
    (re.compile(r"\b(?:sk|rk)_(?:test|live)_\w+|\bwhsec_\w+"), "[secret]"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
)
# Each pattern above can only match text holding one of these: text without any is left as it is,
# without running the patterns (they were half of a log line's cost, docs/performance.md).
REDACTION_MARKERS = ("$argon2", "eyJ", "_test_", "_live_", "whsec_", "@")


def redact(text):
    if not any(marker in text for marker in REDACTION_MARKERS):
        return text
    for pattern, replacement in REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


_order_id = contextvars.ContextVar("shop_order_id", default=None)


@contextmanager
def order_context(order_id):
    token = _order_id.set(order_id)
    try:
        yield
    finally:
        _order_id.reset(token)


def set_order_id(order_id):
    return _order_id.set(order_id)


class JsonFormatter(jsonlogger.JsonFormatter):
    """python-json-logger's formatter, with the shop's fields: ``ts``, ``level``, ``logger``, ``message``,
    ``service``, ``trace_id``/``span_id``, ``order_id``, a record's extras, ``exception``; every string
    redacted (REDACTIONS)."""

    def __init__(self, *args, **kwargs):
        super().__init__("%(levelname)s %(name)s %(message)s", json_default=str,
                         rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"})
        self.process_name = os.environ.get("OTEL_SERVICE_NAME")

    def add_fields(self, log_data, record, message_dict):
        log_data["ts"] = datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")
        super().add_fields(log_data, record, message_dict)
        if self.process_name:
            log_data["service"] = self.process_name
        trace_id, span_id = current_ids()
        if trace_id:
            log_data["trace_id"], log_data["span_id"] = trace_id, span_id
        order_id = getattr(record, "order_id", None) or _order_id.get()
        if order_id:
            log_data["order_id"] = order_id

    def process_log_record(self, log_data):
        return {key: value if isinstance(value, (int, float, bool, type(None))) else redact(str(value))
                for key, value in log_data.items()}


def configure_json_logging(level="INFO"):
    """For processes without a Nameko LOGGING section (the gateway)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("kafka").setLevel(logging.WARNING)
