"""The gateway's kept RPC clients on the real RabbitMQ: one reply consumer per thread, and no
queue declared per call (web_gateway.rpc, shop_common.rpc.RequestPublisher)."""
import os
import time
from contextlib import contextmanager

from nameko import config
from nameko.containers import ServiceContainer

from shop_common.testing import count_queue_declarations, echo_service
from web_gateway.rpc import RpcClients

AMQP_URI = os.environ.get("SHOP_TEST_AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672//")


@contextmanager
def echo_and_clients():
    """A running echo service, and the gateway's RPC clients to call it with."""
    Echo = echo_service()
    with config.patch({"AMQP_URI": AMQP_URI}):
        container = ServiceContainer(Echo)
        container.start()
        clients = RpcClients(AMQP_URI, timeout=10)
        try:
            yield Echo.name, clients
        finally:
            clients.discard()
            container.stop()


def test_calls_declare_no_queue_after_the_first_and_every_reply_arrives(monkeypatch):
    declared = count_queue_declarations(monkeypatch)
    with echo_and_clients() as (echo, clients):
        assert clients.call(echo, "echo", "warm-up") == "warm-up"
        first = list(declared)
        answers = [clients.call(echo, "echo", number) for number in range(20)]
    assert answers == list(range(20))
    assert first and declared == first  # the reply queue once, when the thread's client started


def test_a_thread_idle_longer_than_its_reply_queue_lives_still_gets_its_replies(monkeypatch):
    """A gateway thread that sat idle past the reply queue's expiry (Nameko: 5 minutes, here 1 s):
    the queue is gone, and the next call must declare it again before its request goes out. Without
    that, every call of the thread failed (ReplyQueueExpiredWithPendingReplies, a 500 on the dev stack)."""
    import nameko.standalone.rpc
    from amqp.exceptions import NotFound
    from kombu import Connection

    from web_gateway.rpc import KeptReplyListener

    monkeypatch.setattr(nameko.standalone.rpc, "RPC_REPLY_QUEUE_TTL", 1000)
    monkeypatch.setattr(KeptReplyListener, "IDLE_SECONDS", 0.2)
    with echo_and_clients() as (echo, clients):
        assert clients.call(echo, "echo", "before") == "before"
        reply_queue = clients._local.cluster.reply_listener.queue
        clients._local.cluster.reply_listener.close_replies()  # what the idle check does on the next call

        def reply_queue_exists():
            with Connection(AMQP_URI) as connection:
                try:
                    reply_queue.bind(connection).queue_declare(passive=True)
                    return True
                except NotFound:
                    return False

        time.sleep(3)  # not polled: a passive declare counts as a use and restarts the expiry
        assert not reply_queue_exists(), "RabbitMQ did not expire the idle reply queue"
        assert [clients.call(echo, "echo", n) for n in range(3)] == [0, 1, 2]
