"""The gateway's kept RPC clients on the real RabbitMQ: one reply consumer per thread, and no
queue declared per call (web_gateway.rpc, shop_common.rpc.RequestPublisher)."""
import os
import uuid

from nameko import config
from nameko.containers import ServiceContainer
from nameko.rpc import rpc

from shop_common.testing import count_queue_declarations
from web_gateway.rpc import RpcClients

AMQP_URI = os.environ.get("SHOP_TEST_AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672//")


def test_calls_declare_no_queue_after_the_first_and_every_reply_arrives(monkeypatch):
    class Echo:
        name = f"echo_{uuid.uuid4().hex[:8]}"

        @rpc
        def echo(self, value):
            return value

    declared = count_queue_declarations(monkeypatch)
    with config.patch({"AMQP_URI": AMQP_URI}):
        container = ServiceContainer(Echo)
        container.start()
        clients = RpcClients(AMQP_URI, timeout=10)
        try:
            assert clients.call(Echo.name, "echo", "warm-up") == "warm-up"
            first = list(declared)
            answers = [clients.call(Echo.name, "echo", number) for number in range(20)]
        finally:
            clients.discard()
            container.stop()
    assert answers == list(range(20))
    assert first and declared == first  # the reply queue once, when the thread's client started
