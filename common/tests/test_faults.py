"""Fault flags on a real Redis: switched for every process at once, targeted, off by default."""
import json

import pytest

from shop_common import faults
from shop_common.errors import InjectedFault, ValidationError
from shop_common.faults import FaultFlags
from shop_common.telemetry.metrics import FAULT_FLAG

REDIS_URL = "redis://127.0.0.1:6379/13"


@pytest.fixture
def flags():
    switch, process = FaultFlags(REDIS_URL), FaultFlags(REDIS_URL)  # an operator's shell, and a service
    switch.clear()
    process.refresh()
    yield switch, process
    switch.clear()
    process.refresh()


def test_flags_are_off_until_switched_on_and_reach_another_process(flags):
    switch, process = flags
    assert faults.value("kafka_handler_failure_rate", service="payment_service") == 0.0
    switch.set("kafka_handler_failure_rate", 1.0)
    assert faults.value("kafka_handler_failure_rate", service="payment_service") == 0.0  # not read yet
    process.refresh()
    assert faults.value("kafka_handler_failure_rate", service="payment_service") == 1.0
    assert FAULT_FLAG.labels("kafka_handler_failure_rate")._value.get() == 1.0
    with pytest.raises(InjectedFault):
        faults.raise_if_rolled("kafka_handler_failure_rate", service="payment_service")
    switch.clear("kafka_handler_failure_rate")
    process.refresh()
    assert not faults.roll("kafka_handler_failure_rate", service="payment_service")
    assert FAULT_FLAG.labels("kafka_handler_failure_rate")._value.get() == 0.0


def test_a_target_limits_a_flag_to_one_service_or_method(flags):
    switch, process = flags
    switch.set("rpc_extra_latency_ms", 250, target="order_service.place_order")
    switch.set("outbox_publish_failure_rate", 0.5, target="payment_service")
    process.refresh()
    assert faults.value("rpc_extra_latency_ms", "order_service", "order_service.place_order") == 250
    assert faults.value("rpc_extra_latency_ms", "order_service", "order_service.get_order") == 0
    assert faults.value("outbox_publish_failure_rate", service="payment_service") == 0.5
    assert faults.value("outbox_publish_failure_rate", service="order_service") == 0
    rolls = [faults.roll("outbox_publish_failure_rate", service="payment_service") for _ in range(400)]
    assert 100 < sum(rolls) < 300  # about half


def test_unknown_flags_are_refused_and_zero_switches_off(flags):
    switch, _ = flags
    with pytest.raises(ValidationError):
        switch.set("make_everything_fast", 1)
    switch.set("payment_provider_error_rate", 0.2)
    assert set(switch.current()) == {"payment_provider_error_rate"}
    switch.set("payment_provider_error_rate", 0)
    assert switch.current() == {}


def test_switching_flags_is_in_the_shop_s_audit_stream_with_who_and_the_result(flags):
    """Fault flags belong to no service's data: their audit is the shop-wide stream in Redis."""
    from nameko.testing.services import worker_factory

    from shop_common import audit
    from shop_common.service import ServiceBase

    class Audited(ServiceBase):
        name = "audited_service"

    switch, _ = flags
    switch.redis.delete(audit.AUDIT_STREAM)
    service = worker_factory(Audited, fault_injection=switch, operator="operator:dana")
    service.set_fault("kafka_handler_failure_rate", 0.5, target="payment_service")
    service.clear_faults()
    entries = service.audit_log(10)
    assert [(entry["by"], entry["action"]) for entry in entries] == [
        ("operator:dana", "clear_faults"), ("operator:dana", "set_fault")]
    assert json.loads(entries[1]["detail"]) == {"flag": "kafka_handler_failure_rate", "value": 0.5,
                                                "target": "payment_service"}
    assert service.audit_log(1) == entries[:1]
