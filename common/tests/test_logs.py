"""JSON log lines: what they carry, and what they never do."""
import json
import logging

from hypothesis import example, given, settings
from hypothesis import strategies as st

from shop_common.telemetry.logs import REDACTIONS, JsonFormatter, redact

HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJl"


def line_for(message, *args, exc_info=None, **extra):
    record = logging.LogRecord("shop", logging.ERROR, __file__, 1, message, args, exc_info)
    record.__dict__.update(extra)
    return json.loads(JsonFormatter().format(record))


def test_secrets_and_personal_data_are_redacted_wherever_they_appear():
    try:
        raise ValueError(f"duplicate key: (email, password_hash)=(ann@example.com, {HASH})")
    except ValueError:
        import sys
        exc_info = sys.exc_info()
    line = line_for("login by %s with %s failed: %s", "ann.lee+shop@mail.example.co.uk", TOKEN, "sk_test_abc123",
                    exc_info=exc_info, request={"authorization": f"Bearer {TOKEN}", "secret": "whsec_xyz"})
    text = json.dumps(line)
    for leaked in ("ann@example.com", "ann.lee+shop", "argon2", TOKEN, "sk_test_abc123", "whsec_xyz"):
        assert leaked not in text
    assert line["message"] == "login by [email] with [token] failed: [secret]"
    assert "[password-hash]" in line["exception"] and "[email]" in line["exception"]
    assert "[token]" in line["request"] and "[secret]" in line["request"]


def test_ordinary_lines_are_untouched():
    line = line_for("order %s paid %s", "8d1f0c3e-2f7a-4a59-9c1b-5b1d2f0a9e11", "12.50 EUR", order_id="o-1", count=3)
    assert line["message"] == "order 8d1f0c3e-2f7a-4a59-9c1b-5b1d2f0a9e11 paid 12.50 EUR"
    assert line["order_id"] == "o-1" and line["count"] == 3


PIECES = ["$argon2", "id$v=19", "eyJ", "hbGc", ".", "sk_", "rk_", "_", "test_", "live_", "whsec_", "@", "ann", "mail",
          "example", "co", "-", "+", " ", "x", "7", "(", "'", '"', "é"]


@settings(max_examples=2000, deadline=None, derandomize=True)
@example("sk_live_x")
@example("rk_test_1")
@example("whsec_2")
@example("a@b.co")
@example("eyJa.b.c")
@example("$argon2id")
@given(st.lists(st.sampled_from(PIECES), max_size=24).map("".join) | st.text(max_size=60))
def test_text_without_a_redaction_marker_is_left_alone_only_when_no_pattern_could_match(text):
    """redact() skips the patterns for text holding none of REDACTION_MARKERS: that must never let a
    match through. Compared with running every pattern, on texts built from the patterns' pieces."""
    everything = text
    for pattern, replacement in REDACTIONS:
        everything = pattern.sub(replacement, everything)
    assert redact(text) == everything
