"""What the routes talk to: the five services over RPC, and the caches.

``services()`` gives a request the services by role (``users``, ``products``, ``inventory``,
``orders``, ``payments``), each called by method name: ``services().orders.place_order(...)``.
The Nameko service names are written here and nowhere else in the gateway. Calls from an admin's
request carry the admin (``admin:<user id>``) for the services' audit.
"""
from dataclasses import dataclass
from functools import partial

import redis
from flask import current_app, g

from shop_common.storage.cache import OrderCache, ProductCache, TokenVersions
from web_gateway.rpc import RpcClients

SERVICE_NAMES = {"users": "user_service", "products": "product_service", "inventory": "inventory_service",
                 "orders": "order_service", "payments": "payment_service"}


class Service:
    """One service's RPC methods as attributes."""

    def __init__(self, clients, name, operator=None):
        self._clients, self._name, self._operator = clients, name, operator

    def __getattr__(self, method):
        return partial(self._clients.call_as, self._operator, self._name, method)


class Services:
    def __init__(self, clients, operator=None):
        for role, name in SERVICE_NAMES.items():
            setattr(self, role, Service(clients, name, operator))


@dataclass
class Gateway:
    """Everything one gateway process holds, created once in ``create_app``."""

    config: dict
    rpc: RpcClients  # the request's calls, with the gateway's RPC timeout
    quick_rpc: RpcClients  # readiness and side views: a short timeout, so an outage shows as one
    redis: redis.Redis
    product_cache: ProductCache
    order_cache: OrderCache
    token_versions: TokenVersions

    @classmethod
    def from_config(cls, config):
        client = redis.Redis.from_url(config["REDIS_URL"], socket_timeout=2, health_check_interval=30)
        quick_timeout = float(config.get("READY_TIMEOUT_SECONDS", 2))
        return cls(config=config,
                   rpc=RpcClients(config["AMQP_URI"], float(config.get("RPC_TIMEOUT_SECONDS", 10))),
                   quick_rpc=RpcClients(config["AMQP_URI"], quick_timeout),
                   redis=client, product_cache=ProductCache(client), order_cache=OrderCache(client),
                   token_versions=TokenVersions(client))


def gateway():
    return current_app.extensions["gateway"]


def services(quick=False):
    """The services for this request, as its admin when the caller is one."""
    operator = f"admin:{g.user_id}" if g.get("role") == "admin" else None
    return Services(gateway().quick_rpc if quick else gateway().rpc, operator)
