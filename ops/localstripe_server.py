"""Run localstripe (a fake, stateful Stripe API) for development and tests.

Started from Python rather than its own CLI so that it binds loopback only
and keeps nothing on disk: the CLI listens on every interface and pickles
its whole store to /tmp after every write.

Stripe behaviours localstripe lacks are added here, each as Stripe
documents it, so the shop's code paths for them run against a real server:
- the test PaymentMethod ``pm_card_authenticationRequired`` (3-D Secure);
- a SEPA debit that succeeds stays ``processing`` until it settles (about
  half a second later, then ``payment_intent.succeeded``), as a failing one
  already does;
- ``GET /v1/payment_intents/search`` for ``metadata['key']:'value'``;
- ``created[gte]`` on the lists of PaymentIntents and Refunds (newest first,
  ``limit`` and ``starting_after`` as Stripe pages them);
- lists that read only the objects of their type: localstripe scans its
  whole store for them, and every Charge it returns lists its refunds that
  way, so each payment cost more than the one before (over half of its
  CPU after a few hundred payments; docs/performance.md, item 15);
- refunds that fail after creation (``pending``, then ``failed`` with a
  ``refund.failed`` webhook), switched on per PaymentIntent by
  ``POST /_config/refund_failures`` with ``payment_intent`` and ``count``:
  the next ``count`` refunds of that intent fail, later ones succeed.
"""
import argparse
import asyncio
import collections
import logging
import re

from aiohttp import web
from localstripe import resources, server
from localstripe.webhooks import schedule_webhook

AUTHENTICATION_REQUIRED_CARD = "4000002500003155"
SEARCH_QUERY = re.compile(r"^metadata\['(\w+)'\]:'([^']*)'$")
LISTS_BY_CREATED = {"/v1/payment_intents": "payment_intent", "/v1/refunds": "refund"}  # path -> object type

_refund_failures = {}  # payment intent id -> refunds still to fail
_objects_by_type = collections.defaultdict(dict)  # "refund" -> {store key: object}, in the store's order


def _test_payment_methods():
    retrieve = resources.PaymentMethod._api_retrieve.__func__

    def retrieve_with_more_test_ids(cls, id):
        if id == "pm_card_authenticationRequired":
            return resources.PaymentMethod(type="card", card=dict(
                number=AUTHENTICATION_REQUIRED_CARD, exp_month="12", exp_year="2030", cvc="123"))
        return retrieve(cls, id)

    resources.PaymentMethod._api_retrieve = classmethod(retrieve_with_more_test_ids)


def _asynchronous_debits():
    initialize = resources.Charge._initialize_charge

    def initialize_charge(self, on_success=None, on_failure_now=None, on_failure_later=None):
        if self._authorized and self._is_async_payment_method() and self.captured:
            self._trigger_payment(on_success)  # stays "pending" until the bank answers
            return
        initialize(self, on_success, on_failure_now, on_failure_later)

    resources.Charge._initialize_charge = initialize_charge


def _lists_by_type():
    """Keep the store's objects indexed by type, and list a type from its index."""
    set_item, del_item, clear = resources.Store.__setitem__, resources.Store.__delitem__, resources.Store.clear

    def set_object(store, key, value):
        set_item(store, key, value)
        _objects_by_type[_type_of(key)][key] = value

    def delete_object(store, key):
        del_item(store, key)
        _objects_by_type[_type_of(key)].pop(key, None)

    def clear_objects(store):
        clear(store)
        _objects_by_type.clear()

    def list_all(cls, url, limit=None, starting_after=None, **kwargs):
        if kwargs:  # as localstripe's own
            raise resources.UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        found = resources.List(url, limit=limit, starting_after=starting_after)
        found._list = list(objects_of(cls.object))
        return found

    resources.Store.__setitem__ = set_object
    resources.Store.__delitem__ = delete_object
    resources.Store.clear = clear_objects
    resources.StripeObject._api_list_all = classmethod(list_all)


def _type_of(key):
    return key.split(":", 1)[0]  # localstripe stores "<object type>:<id>"


def objects_of(object_type):
    """The stored objects of one type ("payment_intent"), in the store's order."""
    return _objects_by_type[object_type].values()


def _failing_refunds():
    original_init = resources.Refund.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        intent = self.payment_intent
        if _refund_failures.get(intent, 0) > 0:
            _refund_failures[intent] -= 1
            self.status = "pending"
            asyncio.get_event_loop().call_later(0.3, _fail, self)

    def _fail(refund):
        refund.status = "failed"
        refund.failure_reason = "expired_or_canceled_card"
        schedule_webhook(resources.Event("refund.failed", refund))

    resources.Refund.__init__ = init


@web.middleware
async def shop_extensions(request, handler):
    if request.method == "GET" and request.path == "/v1/payment_intents/search":
        match = SEARCH_QUERY.match(request.query.get("query", ""))
        if match is None:
            raise resources.UserError(400, "Only metadata['key']:'value' queries are supported here")
        key, value = match.groups()
        found = [obj._export() for obj in objects_of("payment_intent") if (obj.metadata or {}).get(key) == value]
        return web.json_response({"object": "search_result", "url": request.path, "has_more": False,
                                  "next_page": None, "data": found})
    if request.method == "GET" and request.path in LISTS_BY_CREATED and "created[gte]" in request.query:
        since = int(request.query["created[gte]"])
        found = [obj for obj in objects_of(LISTS_BY_CREATED[request.path]) if obj.created >= since]
        found.sort(key=lambda obj: (obj.created, obj.id), reverse=True)
        if "starting_after" in request.query:
            ids = [obj.id for obj in found]
            found = found[ids.index(request.query["starting_after"]) + 1:] if request.query["starting_after"] in ids \
                else []
        limit = int(request.query.get("limit", 10))
        return web.json_response({"object": "list", "url": request.path, "has_more": len(found) > limit,
                                  "data": [obj._export() for obj in found[:limit]]})
    if request.method == "POST" and request.path == "/_config/refund_failures":
        data = await request.post()
        _refund_failures[data["payment_intent"]] = int(data.get("count", 1))
        return web.Response()
    return await handler(request)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    args = parser.parse_args()
    resources.Store.dump_to_disk = lambda self: None
    _lists_by_type()
    _test_payment_methods()
    _asynchronous_debits()
    _failing_refunds()
    server.app.middlewares.append(shop_extensions)
    logging.basicConfig(level=logging.WARNING)
    web.run_app(server.app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
