"""RPC whose requests expire with their caller's timeout.

A caller that stops waiting must not have its request run later: the
shopper was told the order failed, so it must not be placed behind their
back. The caller puts ``deadline`` (epoch seconds) in the call's context
data, which Nameko passes on to every nested call, so one call tree shares
one deadline; it also sets the AMQP message's expiry, so RabbitMQ drops a
request that waited out its time in a queue (a service down or busy).

The ``rpc`` entrypoint here answers a request whose deadline has passed
with ``RequestExpired`` instead of running it, and a store that is about to
commit calls ``check_deadline`` first. Calls without a deadline (timers,
Kafka handlers, the operator shell) never expire.
"""
import logging
import time

from kombu import Queue
from nameko.amqp.publish import Publisher, get_connection
from nameko.extensions import DependencyProvider
from nameko.messaging import decode_from_headers
from nameko.rpc import Rpc
from nameko.rpc import ServiceRpc as NamekoServiceRpc
from nameko.standalone.rpc import ClusterRpcClient as NamekoClusterRpcClient
from nameko.standalone.rpc import ReplyListener as NamekoReplyListener

from shop_common.errors import RequestExpired

log = logging.getLogger(__name__)

DEADLINE = "deadline"
OPERATOR = "operator"  # who asked, for the audit: the shell's operator, or "admin:<user id>" from the gateway


def deadline_after(timeout_seconds):
    return time.time() + timeout_seconds


def check_deadline(deadline):
    if deadline is not None and time.time() > float(deadline):
        raise RequestExpired(f"the caller's deadline passed {time.time() - float(deadline):.1f}s ago")


class CallerDeadline(DependencyProvider):
    """The worker's caller's deadline (epoch seconds), or None: pass it to ``check_deadline``."""

    def get_dependency(self, worker_ctx):
        return worker_ctx.context_data.get(DEADLINE)


class ExpiringRpc(Rpc):
    def handle_message(self, body, message):
        try:
            check_deadline(decode_from_headers(message.headers).get(DEADLINE))
        except RequestExpired:
            # Nameko's RPC consumer answers with the error (nobody waits for it) and acks.
            log.warning("not running %s.%s: its caller's deadline has passed",
                        self.container.service_name, self.method_name)
            raise
        super().handle_message(body, message)


rpc = ExpiringRpc.decorator


class RequestPublisher(Publisher):
    """Publishes RPC requests without declaring the caller's reply queue before each one.

    Nameko declares it (the queue, its exchange and their binding: three round trips to RabbitMQ)
    before every request, because kombu cannot remember the declaration of a queue that expires.
    A service's reply listener declares that queue when it starts consuming and again on every
    reconnection, and a queue with a consumer never expires; a standalone client's listener, which
    consumes only while it waits, declares it before a request when no consumer holds it
    (``ReplyListener``). So the per-call declarations bought nothing but latency and RabbitMQ CPU
    (docs/performance.md). Other entities are still declared.
    """

    def __init__(self, *args, declare=None, **kwargs):
        declare = [entity for entity in declare or () if not isinstance(entity, Queue)]
        super().__init__(*args, declare=declare, **kwargs)


class ServiceRpc(NamekoServiceRpc):
    """A service's client of another service (Nameko's), publishing with ``RequestPublisher``."""

    publisher_cls = RequestPublisher


class ReplyListener(NamekoReplyListener):
    """Nameko's standalone reply listener, declaring its reply queue before a request whenever no
    consumer holds it.

    A standalone client consumes its reply queue only while it waits for a reply, and a reply queue
    nobody consumes expires after Nameko's ``RPC_REPLY_QUEUE_TTL`` (5 minutes). With the per-request
    declaration gone (``RequestPublisher``), the first request after such a pause had no queue for its
    reply: every call of that client failed with ``ReplyQueueExpiredWithPendingReplies`` (the gateway
    answered 500 after sitting idle). The declaration costs a round trip only when no consumer runs.
    """

    def register_for_reply(self, correlation_id):
        if not self.holds_queue():
            with get_connection(self.amqp_uri, ssl=self.ssl) as connection:
                self.queue.bind(connection).declare()
        return super().register_for_reply(correlation_id)

    def holds_queue(self):
        """True while a consumer of the reply queue is running (so the queue cannot expire)."""
        return False  # Nameko's listener consumes only while it waits for a reply


class ClusterRpcClient(NamekoClusterRpcClient):
    """The standalone client (the gateway's, the shell's), publishing with ``RequestPublisher`` and
    listening with ``reply_listener_cls``."""

    publisher_cls = RequestPublisher
    reply_listener_cls = ReplyListener

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stock = self.reply_listener  # Nameko's constructor names its class; same queue and settings
        self.reply_listener = self.reply_listener_cls(stock.queue, timeout=stock.timeout, uri=stock.amqp_uri,
                                                      ssl=stock.ssl)
        self.client.register_for_reply = self.reply_listener.register_for_reply
