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

from shop_common.rpc import DEADLINE, deadline_after


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
        client = self._client()
        client.context_data[DEADLINE] = deadline_after(self.timeout)
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
