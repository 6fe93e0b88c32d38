"""The gateway's RPC clients keep one reply consumer per thread (web_gateway.rpc.KeptReplyListener)."""
import time

import pytest
from nameko.exceptions import RpcTimeout

from web_gateway.rpc import KeptReplyListener, RpcClients


@pytest.fixture
def clients(shop):
    made = RpcClients(shop.amqp_uri("web_gateway"), timeout=3)
    yield made
    made.discard()


def count_consumer_connections(clients):
    """How many connections the thread's reply listener opens to consume from, from now on."""
    clients.call("order_service", "health")
    consumer = clients._local.cluster.reply_listener.consumer
    opened = []
    create_connection = consumer.create_connection
    consumer.create_connection = lambda: opened.append(1) or create_connection()
    return opened


def test_calls_share_one_reply_consumer_and_a_fresh_one_follows_idleness(clients, monkeypatch):
    opened = count_consumer_connections(clients)
    for _ in range(30):
        assert clients.call("order_service", "health")["status"] == "ok"
    assert opened == []  # stock nameko: two new connections per call (lost-reply check, consumer)
    monkeypatch.setattr(KeptReplyListener, "IDLE_SECONDS", 0.2)
    time.sleep(0.3)
    # Two calls: the first's reply may already be read while the idle consumer is closed (the
    # reply queue is the same), in which case the second call is the one that consumes afresh.
    for _ in range(2):
        assert clients.call("product_service", "health")["status"] == "ok"
    assert opened == [1]


def test_after_a_timeout_the_next_call_is_answered(clients, shop):
    with shop.held("svc_payment"):
        started = time.monotonic()
        with pytest.raises(RpcTimeout):
            clients.call("payment_service", "health")
        assert time.monotonic() - started < 6
    assert clients.call("order_service", "health")["status"] == "ok"
    assert clients.call("payment_service", "health")["status"] == "ok"
