"""The Order service's cache writes on a real Redis: made once the worker's result is handled, never failing it."""
import json
import logging
import uuid

import redis

from shop_common.storage.cache import OrderCache, OrderCacheProvider

REDIS_URL = "redis://127.0.0.1:6379/12"


def provider_over(client):
    provider = OrderCacheProvider()
    provider.client, provider.cache, provider._writes = client, OrderCache(client), {}  # what setup() makes
    return provider


def over_an_old_entry(status):
    """(a provider, the cache as readers see it, an order whose cached copy says OLD at version 1)."""
    client = redis.Redis.from_url(REDIS_URL)
    order = {"id": str(uuid.uuid4()), "user_id": "u1", "status": status}
    OrderCache(client).put(dict(order, status="OLD"), 1)
    return provider_over(client), OrderCache(client), order


def test_writes_wait_for_the_workers_result():
    """An RPC's reply goes out before the Redis write (nameko calls worker_result after handle_result)."""
    (provider, stored, order), worker = over_an_old_entry("PENDING"), object()
    provider.get_dependency(worker).put(order, 2)
    assert json.loads(stored.get(order["id"], "u1"))["status"] == "OLD"  # the write waits
    provider.worker_result(worker)
    assert json.loads(stored.get(order["id"], "u1")) == {"id": order["id"], "status": "PENDING"}
    provider.worker_teardown(worker)
    assert provider._writes == {}


def test_a_write_put_now_is_made_before_the_reply_and_still_never_raises(caplog):
    """A change its caller reads back at once (an operator's cancel) must not leave the old state cached."""
    (provider, stored, order), worker = over_an_old_entry("CANCELLED"), object()
    provider.get_dependency(worker).put_now(order, 2)
    assert json.loads(stored.get(order["id"], "u1"))["status"] == "CANCELLED"  # before any result
    away = provider_over(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, socket_timeout=0.5))
    with caplog.at_level(logging.WARNING, logger="shop_common.storage.cache"):
        away.get_dependency(worker).put_now(order, 3)
    assert any("order status not cached" in record.getMessage() for record in caplog.records)


def test_a_write_that_fails_after_the_result_is_logged_not_raised(caplog):
    away = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, socket_timeout=0.5)
    provider, worker = provider_over(away), object()
    order_id = str(uuid.uuid4())
    provider.get_dependency(worker).put({"id": order_id, "user_id": "u1", "status": "PENDING"}, 1)
    with caplog.at_level(logging.WARNING, logger="shop_common.storage.cache"):
        provider.worker_result(worker)  # Redis is away: nothing raised, the order is already committed
    assert any("order status not cached" in record.getMessage() and record.order_id == order_id
               for record in caplog.records)
