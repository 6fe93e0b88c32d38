"""What every service has: telemetry, fault flags, and operator calls over RPC."""
import inspect
import logging
from importlib.metadata import version as package_version

import eventlet
from nameko import config
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR, DependencyProvider
from nameko.rpc import Rpc

from shop_common import audit, faults, production
from shop_common.faults import FLAGS, FaultFlags
from shop_common.messaging import dead_letters
from shop_common.messaging.kafka import KafkaEventConsumer, kafka_settings
from shop_common.rpc import OPERATOR, CallerDeadline, rpc
from shop_common.telemetry.metrics import ServiceTelemetry

log = logging.getLogger(__name__)


class Operator(DependencyProvider):
    """Who made this call, for the audit: the name the shell or the gateway put in the call's context."""

    def get_dependency(self, worker_ctx):
        return str(worker_ctx.context_data.get(OPERATOR) or "unknown")[:100]


class StartupChecks(DependencyProvider):
    """Refuses to start the service on a configuration that is unsafe (shop_common.production)."""

    def bind(self, container, attr_name):
        # When the container is built: before any extension's setup connects anywhere.
        production.check_config(config)
        return super().bind(container, attr_name)


class FaultInjection(DependencyProvider):
    """Keeps this process's fault flags current; workers get the flags to switch them.

    Also injects ``rpc_extra_latency_ms`` before an RPC worker runs.
    """

    def setup(self):
        self.flags = FaultFlags(config["REDIS_URL"])

    def start(self):
        self.container.spawn_managed_thread(self.flags.watch, identifier="fault_flags")

    def stop(self):
        self.flags.stop()

    kill = stop

    def get_dependency(self, worker_ctx):
        return self.flags

    def worker_setup(self, worker_ctx):
        if isinstance(worker_ctx.entrypoint, Rpc):
            service, method = worker_ctx.service_name, worker_ctx.entrypoint.method_name
            extra_ms = faults.value("rpc_extra_latency_ms", service, f"{service}.{method}")
            if extra_ms > 0:
                eventlet.sleep(extra_ms / 1000)


class KafkaConsumerState(DependencyProvider):
    """The state of this process's Kafka consumer, if the service has one."""

    def get_dependency(self, worker_ctx):
        consumers = [ext for ext in self.container.extensions if isinstance(ext, KafkaEventConsumer)]
        return consumers[0].state if consumers else (lambda: {"running": False, "note": "no Kafka handlers"})


class ServiceBase:
    """Mixed into each service class."""

    package = None  # the service's distribution name, e.g. "svc-order"

    startup_checks = StartupChecks()
    telemetry = ServiceTelemetry()
    fault_injection = FaultInjection()
    caller_deadline = CallerDeadline()
    consumer_state = KafkaConsumerState()
    operator = Operator()

    @rpc
    def health(self):
        return {"service": self.name, "status": "ok"}

    @rpc
    def help(self):
        """Operator call: this service's operator calls, with their arguments and what they do."""
        calls = {}
        for name, method in inspect.getmembers(type(self), inspect.isfunction):
            doc = inspect.getdoc(method) or ""
            if getattr(method, ENTRYPOINT_EXTENSIONS_ATTR, None) and doc.startswith("Operator call:"):
                arguments = str(inspect.signature(method)).replace("(self, ", "(").replace("(self)", "()")
                calls[f"{name}{arguments}"] = " ".join(doc.removeprefix("Operator call:").split())
        return calls

    @rpc
    def version(self):
        return {"service": self.name, "version": package_version(self.package)}

    @rpc
    def set_fault(self, flag, value, target=None):
        """Operator call: switch a fault flag on in every process (0 switches it off); see fault_flags()."""
        result = self.fault_injection.set(flag, value, target)
        log.warning("audit: %s set fault flag %s=%s (target %s)", self.operator, flag, value, target)
        audit.record(self.fault_injection.redis, self.operator, "set_fault",
                     {"flag": flag, "value": value, "target": target}, result)
        return result

    @rpc
    def clear_faults(self, flag=None):
        """Operator call: switch one fault flag, or all of them, off."""
        result = self.fault_injection.clear(flag)
        log.warning("audit: %s cleared fault flags (%s)", self.operator, flag or "all")
        audit.record(self.fault_injection.redis, self.operator, "clear_faults", {"flag": flag}, result)
        return result

    @rpc
    def audit_log(self, limit=50):
        """Operator call: the latest actions on the shop as a whole (fault flags, dead-letter replays), newest
        first: when, who, what, the result. Actions on one record are in its own history."""
        return audit.entries(self.fault_injection.redis, audit.history_limit(limit))

    @rpc
    def fault_flags(self):
        """Operator call: the flags switched on now, and every flag there is."""
        return {"on": self.fault_injection.current(), "known": FLAGS}

    @rpc
    def kafka_consumer(self):
        """Operator call: this instance's Kafka consumer: partitions assigned, paused, in hand, committed."""
        return self.consumer_state()

    @rpc
    def dead_letters(self, limit=100):
        """Operator call: the latest dead letters and why; their ids go to replay_dead_letters."""
        return dead_letters.list_dead_letters(_bootstrap_servers(), int(limit))

    @rpc
    def replay_dead_letters(self, ids):
        """Operator call: send these dead letters back to their topics (after fixing the cause); asked of the
        service that owns their topic (the only one allowed to write it), which the error names otherwise."""
        result = dead_letters.replay(_bootstrap_servers(), list(ids), owner=self.name)
        log.warning("audit: %s replayed dead letters %s", self.operator, ", ".join(map(str, ids)))
        audit.record(self.fault_injection.redis, self.operator, "replay_dead_letters", {"ids": list(ids)}, result)
        return result


def _bootstrap_servers():
    return kafka_settings().get("bootstrap_servers", "127.0.0.1:9092")
