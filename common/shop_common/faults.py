"""Fault injection: flags switched at runtime, all off by default.

Flags are evaluated through OpenFeature, so the code that injects a fault
asks a feature-flag client and never knows where flags live. Here they live
in Redis (one hash per shop), so one operator call reaches every process of
every service: each process reads the hash every second and installs what it
finds as OpenFeature's in-memory provider. ``shop_fault_flag{flag}`` shows
each flag's value per process and the ``FaultInjectionActive`` alert fires
when one is left on.

A flag is a number (a rate from 0 to 1, or milliseconds) with an optional
target: a service name (``payment_service``) or one RPC method
(``order_service.place_order``); without a target it applies everywhere.
"""
import json
import logging
import random
import threading
import time

import redis
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from shop_common.errors import InjectedFault, ValidationError
from shop_common.telemetry.metrics import FAULT_FLAG

log = logging.getLogger(__name__)

FLAGS = {
    "payment_provider_error_rate": "share of Stripe calls that fail before reaching Stripe",
    "payment_provider_timeout_rate": "share of Stripe calls whose answer is lost after Stripe acted on them",
    "rpc_extra_latency_ms": "milliseconds added to each call of an RPC method (target: service.method)",
    "kafka_handler_failure_rate": "share of Kafka handler runs that fail (target: a service, or all)",
    "outbox_publish_failure_rate": "share of outbox publish batches that fail (target: a service, or all)",
}
REDIS_KEY = "shop:fault_flags"
REFRESH_SECONDS = 1.0


def _in_memory_flag(setting):
    target = setting.get("target")

    def evaluate(flag, context):
        attributes = context.attributes if context else {}
        if target and target not in (attributes.get("service"), attributes.get("method")):
            return FlagResolutionDetails(value=0.0, reason=Reason.DEFAULT)
        return FlagResolutionDetails(value=float(setting["value"]), reason=Reason.TARGETING_MATCH)

    return InMemoryFlag("on", {"on": float(setting["value"]), "off": 0.0}, context_evaluator=evaluate)


def value(flag, service=None, method=None):
    """The flag's value for this service (and method); 0.0 when it is off or not meant for them."""
    context = EvaluationContext(attributes={"service": service, "method": method})
    return api.get_client().get_float_value(flag, 0.0, context)


def roll(flag, service=None, method=None):
    """True at the flag's rate: the caller should fail now."""
    rate = value(flag, service, method)
    return rate > 0 and random.random() < rate


def raise_if_rolled(flag, service=None, method=None):
    if roll(flag, service, method):
        raise InjectedFault(f"fault injected by {flag}")


class FaultFlags:
    """Reads and writes the shop's flags; ``watch`` keeps this process's OpenFeature provider current."""

    def __init__(self, redis_url):
        self.redis = redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
        self._installed = None
        self._stopping = threading.Event()

    def set(self, flag, flag_value, target=None):
        if flag not in FLAGS:
            raise ValidationError(f"unknown fault flag {flag!r}", {"flag": f"one of {', '.join(sorted(FLAGS))}"})
        flag_value = float(flag_value)
        if flag_value <= 0:
            return self.clear(flag)
        setting = {"value": flag_value, "target": target, "set_at": time.time()}
        self.redis.hset(REDIS_KEY, flag, json.dumps(setting))
        log.warning("fault flag %s set to %s (target %s)", flag, flag_value, target or "all")
        return self.current()

    def clear(self, flag=None):
        if flag is None:
            self.redis.delete(REDIS_KEY)
        else:
            self.redis.hdel(REDIS_KEY, flag)
        log.warning("fault flag %s cleared", flag or "(all)")
        return self.current()

    def current(self):
        return {flag.decode(): json.loads(setting) for flag, setting in self.redis.hgetall(REDIS_KEY).items()
                if flag.decode() in FLAGS}

    def refresh(self):
        """Install what Redis holds now (no change, no re-install)."""
        settings = self.current()
        if settings == self._installed:
            return
        api.set_provider(InMemoryProvider({flag: _in_memory_flag(setting) for flag, setting in settings.items()}))
        for flag in FLAGS:
            FAULT_FLAG.labels(flag).set(settings[flag]["value"] if flag in settings else 0)
        if self._installed is not None or settings:
            log.warning("fault flags now: %s", settings or "none")
        self._installed = settings

    def watch(self):
        """Refresh every second until ``stop``; Redis being away keeps the last flags."""
        for flag in FLAGS:
            FAULT_FLAG.labels(flag).set(0)
        while not self._stopping.is_set():
            try:
                self.refresh()
            except Exception as exc:  # Redis paused or away, a hand-edited value: keep the last flags
                log.debug("fault flags not refreshed: %r", exc)
            self._stopping.wait(REFRESH_SECONDS)

    def stop(self):
        self._stopping.set()
