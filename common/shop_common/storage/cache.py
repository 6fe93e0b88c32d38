"""Redis keys and rules for the product and order caches.

Product entries carry a generation in their key. A change bumps the
generation (the list generation for every change, the product's own for a
change to that product), so a reader that fetched from the database before
the change writes its result under the old generation, where nobody looks:
invalidation cannot be undone by a slow reader, and no key scan is needed.

Order entries carry the order's version; a write never replaces a newer one.

A user's token version (bumped by logging out everywhere) is kept as long as an
access token lives: the gateway refuses a token of an older version, and once
the key expires every such token has expired too.
"""
import json

import redis
from nameko import config
from nameko.extensions import DependencyProvider

PRODUCT_TTL_SECONDS = 300
ORDER_TTL_SECONDS = 3600
# A PENDING entry will change; if the write of its successor fails (Redis away), it must not
# outlive the truth for long. Final statuses never change and keep the long TTL.
OPEN_ORDER_TTL_SECONDS = 15

LIST_GENERATION_KEY = "shop:products:gen"


def product_generation_key(product_id):
    return f"shop:product:{product_id}:gen"


def product_key(product_id, generation):
    return f"shop:product:{product_id}:g{generation}"


def product_list_key(generation, page, page_size, query):
    return f"shop:products:g{generation}:p{page}:s{page_size}:q{query or ''}"


def token_version_key(user_id):
    return f"shop:token-version:{user_id}"


def order_key(order_id):
    return f"shop:order:{order_id}"


class ProductCache:
    """Reads and fills product entries as the JSON bytes the gateway sends: a hit is served without
    decoding and encoding it again. ``invalidate`` after any change."""

    def __init__(self, redis_client):
        self.redis = redis_client

    @staticmethod
    def encode(value):
        return json.dumps(value, separators=(",", ":")).encode()

    def _generation(self, key):
        return int(self.redis.get(key) or 0)

    def get_list(self, page, page_size, query):
        """(the cached body or None, the key to fill on a miss)."""
        generation = self._generation(LIST_GENERATION_KEY)
        key = product_list_key(generation, page, page_size, query)
        return self.redis.get(key), key

    def get_product(self, product_id):
        generation = self._generation(product_generation_key(product_id))
        key = product_key(product_id, generation)
        return self.redis.get(key), key

    def fill(self, key, body):
        """Store ``body`` (``encode``'s bytes) under the key ``get_*`` returned, i.e. the generation
        read before the database."""
        self.redis.set(key, body, ex=PRODUCT_TTL_SECONDS)

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
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'body', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class OrderCache:
    def __init__(self, redis_client):
        self.redis = redis_client
        self._set_if_newer = redis_client.register_script(_SET_IF_NEWER)

    def put(self, order_view, version):
        ttl = OPEN_ORDER_TTL_SECONDS if order_view["status"] == "PENDING" else ORDER_TTL_SECONDS
        return bool(self._set_if_newer(
            keys=[order_key(order_view["id"])],
            args=[version, json.dumps(order_view), ttl],
        ))

    def get(self, order_id):
        body = self.redis.hget(order_key(order_id), "body")
        return json.loads(body) if body else None


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
    cache_class = OrderCache


class TokenVersionsProvider(_RedisProvider):
    cache_class = TokenVersions
