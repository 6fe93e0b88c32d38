"""Long-lived Nameko RPC clients for the gateway's threads.

``ClusterRpcClient`` is single-threaded, and opening one costs tens of
milliseconds, so each gateway thread keeps its own open client and only
replaces it after a connection failure. Every call carries a deadline: once
the gateway stops waiting, the request is dropped rather than run
(``shop_common.rpc``).
"""
import threading

from kombu.exceptions import OperationalError
from nameko.standalone.rpc import ClusterRpcClient

from shop_common.rpc import DEADLINE, OPERATOR, deadline_after


class RpcClients:
    def __init__(self, amqp_uri, timeout):
        self.amqp_uri = amqp_uri
        self.timeout = timeout
        self._local = threading.local()

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            # expiration: RabbitMQ drops a request still queued when the caller has stopped waiting.
            client = ClusterRpcClient(uri=self.amqp_uri, timeout=self.timeout, context_data={},
                                      expiration=self.timeout).start()
            self._local.client = client
        return client

    def call(self, service, method, *args, **kwargs):
        return self.call_as(None, service, method, *args, **kwargs)

    def call_as(self, operator, service, method, *args, **kwargs):
        """A call on behalf of ``operator`` (e.g. "admin:<user id>"), whom the service's audit records."""
        client = self._client()
        client.context_data[DEADLINE] = deadline_after(self.timeout)
        if operator:
            client.context_data[OPERATOR] = operator
        else:
            client.context_data.pop(OPERATOR, None)
        try:
            return getattr(client[service], method)(*args, **kwargs)
        except (OperationalError, ConnectionError, OSError):
            self.discard()
            raise

    def discard(self):
        client = getattr(self._local, "client", None)
        self._local.client = None
        if client is not None:
            try:
                client.stop()
            except Exception:  # the connection is already gone
                pass
