"""A service's RPC requests are published without re-declaring its reply queue (shop_common.rpc),
and the replies still arrive: on the real RabbitMQ, between two real Nameko containers."""
import os
import time
import uuid

from nameko import config
from nameko.containers import ServiceContainer
from nameko.rpc import rpc
from nameko.testing.services import entrypoint_hook

from shop_common.rpc import ServiceRpc
from shop_common.testing import count_queue_declarations, echo_service

AMQP_URI = os.environ.get("SHOP_TEST_AMQP_URI", "pyamqp://guest:guest@127.0.0.1:5672//")


def test_a_service_calls_another_without_declaring_a_queue_per_call(monkeypatch):
    queue_declarations = count_queue_declarations(monkeypatch)
    Echo = echo_service()
    echo_name = Echo.name

    class Caller:
        name = f"caller_{uuid.uuid4().hex[:8]}"
        echo = ServiceRpc(echo_name)

        @rpc
        def call_echo(self, value):
            return self.echo.echo(value)

    with config.patch({"AMQP_URI": AMQP_URI}):
        containers = [ServiceContainer(Echo), ServiceContainer(Caller)]
        for container in containers:
            container.start()
        try:
            with entrypoint_hook(containers[1], "call_echo") as call_echo:
                assert call_echo("warm-up") == "warm-up"
                queue_declarations.clear()
                answers = [call_echo(f"call {number}") for number in range(20)]
        finally:
            for container in containers:
                container.stop()
    assert answers == [f"call {number}" for number in range(20)]
    # Nameko's own ServiceRpc declared the caller's reply queue (with its exchange and binding)
    # before each of these 20 requests.
    assert queue_declarations == []


def test_a_standalone_client_idle_longer_than_its_reply_queue_lives_still_gets_its_replies(monkeypatch):
    """The operator shell's client consumes its reply queue only while it waits for a reply, so the
    queue expires when the shell sits idle (Nameko: 5 minutes, here 1 s). Its next request must
    declare the queue again first: without that, every later call failed (lost replies)."""
    import nameko.standalone.rpc

    from shop_common.rpc import ClusterRpcClient

    monkeypatch.setattr(nameko.standalone.rpc, "RPC_REPLY_QUEUE_TTL", 1000)
    Echo = echo_service()
    echo_name = Echo.name

    with config.patch({"AMQP_URI": AMQP_URI}):
        container = ServiceContainer(Echo)
        container.start()
        try:
            with ClusterRpcClient(uri=AMQP_URI, timeout=10) as client:
                assert client[echo_name].echo("before") == "before"
                time.sleep(3)  # the reply queue, unused, expires after 1 s
                assert [client[echo_name].echo(n) for n in range(3)] == [0, 1, 2]
        finally:
            container.stop()
