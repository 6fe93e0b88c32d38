"""Long-lived Nameko RPC clients for the gateway's threads.

``ClusterRpcClient`` is single-threaded, and opening one costs tens of
milliseconds, so each gateway thread keeps its own open client and only
replaces it after a connection failure. Every call carries a deadline: once
the gateway stops waiting, the request is dropped rather than run
(``shop_common.rpc``).
"""
import socket
import threading
import time

from kombu.exceptions import OperationalError
from nameko.exceptions import RpcTimeout

from shop_common.rpc import DEADLINE, OPERATOR, ClusterRpcClient, ReplyListener, deadline_after


class KeptReplyListener(ReplyListener):
    """Nameko's standalone reply listener, consuming from one connection kept between calls.

    The stock listener enters kombu's consumer context for every call: a new connection to
    look for lost replies, another to consume on, a queue declare, basic.consume and
    basic.cancel. That made an RPC round trip 8 ms where the transport takes 0.5 ms (make
    bench). This one enters it once and again only after an error, or after the thread sat
    idle long enough for RabbitMQ to drop a connection that sends no heartbeats.
    """

    IDLE_SECONDS = 20  # well inside RabbitMQ's heartbeat timeout (2 x nameko's 60 s)

    _replies = None
    _used_at = 0.0

    def holds_queue(self):
        """Called before each request: a consumer left idle too long is closed (and the queue declared)."""
        if time.monotonic() - self._used_at > self.IDLE_SECONDS:
            self.close_replies()
        return self._replies is not None

    def consume_reply(self, correlation_id):
        if self.consumer.should_stop:
            raise RuntimeError("Stopped and can no longer be used")
        try:
            while not self.pending.get(correlation_id):
                if self._replies is None:
                    self._replies = self.consumer.consume(timeout=self.timeout)
                next(self._replies)
        except socket.timeout:
            self.close_replies()
            raise RpcTimeout() from None
        except BaseException:
            self.close_replies()
            raise
        self._used_at = time.monotonic()
        return self.pending.pop(correlation_id)

    def close_replies(self):
        replies, self._replies = self._replies, None
        if replies is not None:
            try:
                replies.close()  # leaves the consumer context: cancels the consumer, closes its connection
            except Exception:  # the connection is gone already
                pass

    def stop(self):
        self.close_replies()
        super().stop()


class GatewayRpcClient(ClusterRpcClient):
    reply_listener_cls = KeptReplyListener


class RpcClients:
    def __init__(self, amqp_uri, timeout):
        self.amqp_uri = amqp_uri
        self.timeout = timeout
        self._local = threading.local()

    def _client(self):
        cluster = getattr(self._local, "cluster", None)
        if cluster is None:
            # expiration: RabbitMQ drops a request still queued when the caller has stopped waiting.
            cluster = GatewayRpcClient(uri=self.amqp_uri, timeout=self.timeout, context_data={},
                                       expiration=self.timeout)
            cluster.start()
            self._local.cluster = cluster
        return cluster.client

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
        cluster = getattr(self._local, "cluster", None)
        self._local.cluster = None
        if cluster is not None:
            try:
                cluster.stop()
            except Exception:  # the connection is already gone
                pass
