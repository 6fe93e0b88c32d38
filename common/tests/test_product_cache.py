"""The catalogue cache on a real Redis: one round trip per read, and no stale entry ever served."""
import redis

from shop_common.storage.cache import ProductCache

REDIS_URL = "redis://127.0.0.1:6379/12"


def fresh_cache():
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    return ProductCache(client), client


def test_a_filled_entry_is_served_until_a_change_and_a_slow_reader_cannot_undo_the_change():
    cache, _ = fresh_cache()
    body, slot = cache.get_list(1, 20, "")
    assert body is None
    slow_body, slow_slot = cache.get_list(1, 20, "")  # a reader that read the database before the change
    cache.fill(slot, b'{"items":["old"]}')
    assert cache.get_list(1, 20, "")[0] == b'{"items":["old"]}'
    cache.invalidate(["p1"])  # a product changed
    assert cache.get_list(1, 20, "")[0] is None
    _, current_slot = cache.get_list(1, 20, "")
    cache.fill(current_slot, b'{"items":["new"]}')
    cache.fill(slow_slot, b'{"items":["old"]}')  # the slow reader stores what it read before the change
    assert cache.get_list(1, 20, "")[0] is None  # never served: it carries the old generation
    cache.fill(cache.get_list(1, 20, "")[1], b'{"items":["new"]}')
    assert cache.get_list(1, 20, "")[0] == b'{"items":["new"]}'


def test_a_product_entry_follows_its_own_generation_and_bodies_keep_their_colons():
    cache, _ = fresh_cache()
    cache.fill(cache.get_product("p1")[1], b'{"name":"a:b"}')
    cache.fill(cache.get_product("p2")[1], b'{"name":"c"}')
    cache.invalidate(["p1"])
    assert cache.get_product("p1")[0] is None
    assert cache.get_product("p2")[0] == b'{"name":"c"}'  # another product's change leaves it alone
    cache.fill(cache.get_product("p1")[1], b'{"name":"a:b"}')
    assert cache.get_product("p1")[0] == b'{"name":"a:b"}'


def test_a_hit_is_one_round_trip():
    cache, client = fresh_cache()
    cache.fill(cache.get_list(2, 10, "lamp")[1], b"[]")
    calls = []
    real = client.execute_command
    client.execute_command = lambda *args, **kwargs: calls.append(args[0]) or real(*args, **kwargs)
    assert cache.get_list(2, 10, "lamp")[0] == b"[]"
    assert calls == ["MGET"]
