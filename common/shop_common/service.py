"""RPC methods every service answers, for the gateway and for operators."""
from importlib.metadata import version as package_version

from nameko.rpc import rpc


class ServiceBase:
    """Mixed into each service class: ``health`` and ``version`` over RPC."""

    package = None  # the service's distribution name, e.g. "svc-order"

    @rpc
    def health(self):
        return {"service": self.name, "status": "ok"}

    @rpc
    def version(self):
        return {"service": self.name, "version": package_version(self.package)}
