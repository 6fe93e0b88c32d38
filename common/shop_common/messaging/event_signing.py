"""Who may say what on the bus: producers sign their envelopes, consumers believe only what is signed.

Each producing service has its own key (``SHOP_EVENT_KEYS``:
``order_service=<key>,inventory_service=<key>,payment_service=<key>``). Its
outbox relay adds ``"signature": "hmac-sha256=<hex>"`` over the canonical
envelope (keys sorted, no whitespace, the signature left out). A consumer
accepts an event only when the signature verifies with the key of the service
that owns the record's topic and that service is the envelope's ``producer``
(handlers are chosen by topic and type: nothing else can reach them); anything else is dead-lettered as
``untrusted`` (and counted: alert EventsUntrusted). A dead letter replayed
later keeps its original signature.

HMAC keys are shared secrets: a process that verifies a producer's events
could also sign them. Kafka's own ACLs (compose: SASL/SCRAM, one user per
service, write rights on its own topic only) keep the other services from
writing there in the first place; the signature is what still holds when
someone reaches the broker without them (a leaked or default login).
"""
import hashlib
import hmac
import json
from collections.abc import Mapping

from nameko import config

from shop_common.messaging.events import INVENTORY_TOPIC, ORDERS_TOPIC, PAYMENTS_TOPIC, MalformedEvent

SIGNATURE_FIELD = "signature"
SCHEME = "hmac-sha256="
TOPIC_OWNERS = {ORDERS_TOPIC: "order_service", INVENTORY_TOPIC: "inventory_service",
                PAYMENTS_TOPIC: "payment_service"}


class UntrustedEvent(MalformedEvent):
    """Not signed by the topic's owner (forged, altered, or from a producer that may not write there)."""


def parse_keys(text):
    """``name=key,name=key`` -> {name: key bytes}; raises ValueError on anything else."""
    keys = {}
    for part in filter(None, (part.strip() for part in str(text or "").split(","))):
        name, separator, key = part.partition("=")
        if not separator or not name.strip() or not key.strip():
            raise ValueError("SHOP_EVENT_KEYS must read name=key,name=key")
        keys[name.strip()] = key.strip().encode()
    return keys


def configured_keys(settings=None):
    events = (settings if settings is not None else config).get("EVENTS") or {}
    return parse_keys(events.get("keys") if isinstance(events, Mapping) else "")


def _canonical(event):
    unsigned = {key: value for key, value in event.items() if key != SIGNATURE_FIELD}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()


def _digest(event, key):
    return hmac.new(key, _canonical(event), hashlib.sha256).hexdigest()


def sign(event, key):
    return dict(event, **{SIGNATURE_FIELD: SCHEME + _digest(event, key)})


def verify(event, topic, keys):
    """Raise UntrustedEvent unless the topic's owner signed this event (see module doc)."""
    owner = TOPIC_OWNERS.get(topic)
    if owner is None:
        raise UntrustedEvent(f"nobody may publish events on {topic}")
    if event.get("producer") != owner:
        raise UntrustedEvent(f"producer {event.get('producer')!r} may not publish on {topic}")
    key = keys.get(owner)
    if key is None:
        raise UntrustedEvent(f"no key for {owner} (SHOP_EVENT_KEYS)")
    signature = event.get(SIGNATURE_FIELD)
    if not isinstance(signature, str) or not signature.startswith(SCHEME):
        raise UntrustedEvent("unsigned")
    if not hmac.compare_digest(signature[len(SCHEME):], _digest(event, key)):
        raise UntrustedEvent("the signature does not match")
