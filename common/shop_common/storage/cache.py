"""Redis keys and rules for the product and order caches.

Product entries carry the generation they were read under. A change bumps
the generation (the list generation for every change, the product's own for
a change to that product); a reader fetches the generation and the entry in
one MGET and serves the entry only when the two match. So a reader that
fetched from the database before the change stores its result under the old
generation, which nobody serves: invalidation cannot be undone by a slow
reader, no key scan is needed, and a hit costs one round trip to Redis.

Order entries carry the order's version; a write never replaces a newer one. They hold the
order as the gateway answers it (JSON bytes, without its owner) and its owner beside it: a
shopper's status poll is one HMGET and no decoding.

A user's token version (bumped by logging out everywhere) is kept as long as an
access token lives: the gateway refuses a token of an older version, and once
the key expires every such token has expired too.
"""
import json
import logging

import redis
from nameko import config
from nameko.extensions import DependencyProvider

from shop_common.http.responses import public_order

PRODUCT_TTL_SECONDS = 300
ORDER_TTL_SECONDS = 3600
# A PENDING entry will change; if the write of its successor fails (Redis away), it must not
# outlive the truth for long. Final statuses never change and keep the long TTL.
OPEN_ORDER_TTL_SECONDS = 15

log = logging.getLogger(__name__)

LIST_GENERATION_KEY = "shop:products:gen"


def product_generation_key(product_id):
    return f"shop:product:{product_id}:gen"


def product_key(product_id):
    return f"shop:product:{product_id}:entry"


def product_list_key(page, page_size, query):
    return f"shop:products:entry:p{page}:s{page_size}:q{query or ''}"


def token_version_key(user_id):
    return f"shop:token-version:{user_id}"


def order_key(order_id):
    return f"shop:order:{order_id}"


def encode(value):
    """JSON bytes as the gateway sends them and both caches keep them."""
    return json.dumps(value, separators=(",", ":")).encode()


class ProductCache:
    """Reads and fills product entries as the JSON bytes the gateway sends: a hit is served without
    decoding and encoding it again. ``invalidate`` after any change."""

    def __init__(self, redis_client):
        self.redis = redis_client

    def _read(self, generation_key, key):
        """(the body if it was stored under the current generation, else None; what to fill on a miss)."""
        generation, entry = self.redis.mget(generation_key, key)
        generation = int(generation or 0)
        if entry is not None:
            stored_under, _, body = entry.partition(b":")
            if stored_under == str(generation).encode():
                return body, (key, generation)
        return None, (key, generation)

    def get_list(self, page, page_size, query):
        """(the cached body or None, what ``fill`` takes on a miss)."""
        return self._read(LIST_GENERATION_KEY, product_list_key(page, page_size, query))

    def get_product(self, product_id):
        return self._read(product_generation_key(product_id), product_key(product_id))

    def fill(self, slot, body):
        """Store ``body`` (``encode``'s bytes) with the generation ``get_*`` read before the database."""
        key, generation = slot
        self.redis.set(key, b"%d:%s" % (generation, body), ex=PRODUCT_TTL_SECONDS)

    def invalidate(self, product_ids=()):
        pipe = self.redis.pipeline()
        pipe.incr(LIST_GENERATION_KEY)
        for product_id in product_ids:
            pipe.incr(product_generation_key(product_id))
        pipe.execute()


# Replace the entry only when it is absent or older than the one offered.
_SET_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], 'version')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'owner', ARGV[2], 'view', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


class OrderCache:
    def __init__(self, redis_client):
        self.redis = redis_client
        self._set_if_newer = redis_client.register_script(_SET_IF_NEWER)

    def put(self, order_view, version):
        """Store the Order service's view of an order (``user_id`` included) unless a newer one is stored."""
        ttl = OPEN_ORDER_TTL_SECONDS if order_view["status"] == "PENDING" else ORDER_TTL_SECONDS
        return bool(self._set_if_newer(
            keys=[order_key(order_view["id"])],
            args=[version, order_view["user_id"], encode(public_order(order_view)), ttl],
        ))

    def get(self, order_id, owner):
        """The order's public JSON bytes when it is cached and ``owner``'s, else None."""
        stored_owner, view = self.redis.hmget(order_key(order_id), "owner", "view")
        return view if view is not None and stored_owner == owner.encode() else None


class TokenVersions:
    """The current token version of users who revoked their tokens (written by Users, read by the gateway)."""

    def __init__(self, redis_client):
        self.redis = redis_client

    def publish(self, user_id, version, ttl_seconds):
        self.redis.set(token_version_key(user_id), int(version), ex=max(int(ttl_seconds), 1))

    def current(self, user_id):
        """The version a token must have at least, or None when no revocation is in force."""
        value = self.redis.get(token_version_key(user_id))
        return int(value) if value is not None else None


class _RedisProvider(DependencyProvider):
    cache_class = None

    def setup(self):
        # Short timeouts: a cache write is best effort and must not hold a worker when Redis stalls.
        self.client = redis.Redis.from_url(config["REDIS_URL"], socket_timeout=1, socket_connect_timeout=1,
                                           health_check_interval=30)
        self.cache = self.cache_class(self.client)

    def stop(self):
        self.client.close()

    def get_dependency(self, worker_ctx):
        return self.cache


class ProductCacheProvider(_RedisProvider):
    cache_class = ProductCache


class OrderCacheProvider(_RedisProvider):
    """A worker's order-cache writes wait until its result is handled (an RPC's reply sent, a Kafka
    record done): no caller waits for Redis (about a millisecond of a placement at rest). A change
    its caller may read back at once (an operator's cancel) is written before the reply instead
    (``put_now``): after the reply the cached copy would still show the old state for a moment. Best
    effort, as every copy of an order: a write that fails is logged, and the versioned entry is
    written again on the order's next change or read."""
    cache_class = OrderCache

    def setup(self):
        super().setup()
        self._writes = {}  # worker context -> [(order view, version)] to write after its result

    def get_dependency(self, worker_ctx):
        return _WrittenAfterResult(self._writes.setdefault(worker_ctx, []), self._write)

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        for order_view, version in self._writes.pop(worker_ctx, ()):
            self._write(order_view, version)

    def _write(self, order_view, version):
        try:
            self.cache.put(order_view, version)
        except Exception as exc:
            log.warning("order status not cached: %r", exc, extra={"order_id": order_view["id"]})

    def worker_teardown(self, worker_ctx):
        self._writes.pop(worker_ctx, None)  # written by worker_result already; never left behind


class _WrittenAfterResult:
    """The order cache as one worker sees it: its writes queued for its provider (no service reads it)."""

    def __init__(self, writes, write_now):
        self._writes = writes
        self._write_now = write_now

    def put(self, order_view, version):
        self._writes.append((order_view, version))

    def put_now(self, order_view, version):
        self._write_now(order_view, version)


class TokenVersionsProvider(_RedisProvider):
    cache_class = TokenVersions
