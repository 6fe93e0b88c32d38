"""The catalogue: reads from Redis when cached (X-Cache), changes by admins through the services."""
from flask import Blueprint, request

from shop_common.http import api
from shop_common.storage.cache import encode
from web_gateway import observability
from web_gateway.auth import admin_required
from web_gateway.edge import json_body
from web_gateway.routes.requests import cached_response, from_cache
from web_gateway.services import gateway, services

blueprint = Blueprint("products", __name__)


def page_args():
    """(page, page_size, q) of a valid catalogue query (the cache key), or the 400 naming the bad field."""
    query = api.parse(api.PageQuery, {key: request.args.get(key) for key in ("page", "page_size", "q")
                                      if request.args.get(key) is not None}, "invalid page request")
    return query.page, query.page_size, query.q or ""


@blueprint.get("/products")
def list_products():
    args, cache = page_args(), gateway().product_cache
    cached, key = from_cache(cache.get_list, *args) or (None, None)
    observability.cache_result("product_list", cached is not None)
    if cached is not None:
        return cached_response(cached, "HIT")
    body = encode(services().products.list_products(*args))
    if key:
        from_cache(cache.fill, key, body)
    return cached_response(body, "MISS")


@blueprint.get("/products/<product_id>")
def get_product(product_id):
    cache = gateway().product_cache
    cached, key = from_cache(cache.get_product, product_id) or (None, None)
    observability.cache_result("product", cached is not None)
    if cached is not None:
        return cached_response(cached, "HIT")
    body = encode(services().products.get_product(product_id))
    if key:
        from_cache(cache.fill, key, body)
    return cached_response(body, "MISS")


@blueprint.post("/products")
@admin_required
def create_product():
    return services().products.create_product(json_body()), 201


@blueprint.patch("/products/<product_id>")
@admin_required
def update_product(product_id):
    return services().products.update_product(product_id, json_body())
