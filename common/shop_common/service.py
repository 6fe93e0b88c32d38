"""What every service has: telemetry, and ``health`` and ``version`` over RPC."""
from importlib.metadata import version as package_version

from nameko.rpc import rpc

from shop_common.metrics import ServiceTelemetry


class ServiceBase:
    """Mixed into each service class."""

    package = None  # the service's distribution name, e.g. "svc-order"

    telemetry = ServiceTelemetry()

    @rpc
    def health(self):
        return {"service": self.name, "status": "ok"}

    @rpc
    def version(self):
        return {"service": self.name, "version": package_version(self.package)}
