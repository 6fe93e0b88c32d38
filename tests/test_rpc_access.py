"""Each component's RabbitMQ login may make only its own calls (ops/rpc_access.py).

The end-to-end tests run every process under these logins, so a call the table forgot fails them;
here: the table names real methods, lists every call the gateway makes, and the broker refuses the
rest — a leaked gateway or Order login cannot set stock or prices, nor listen to another's calls.
"""
import importlib
import re
import sys
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue
from amqp.exceptions import AccessRefused
from nameko.rpc import Rpc
from nameko.standalone.rpc import ClusterRpcClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ops"))
import rpc_access  # noqa: E402
from stack import SERVICES  # noqa: E402

COMPONENT_OF = {name: component for component, name in rpc_access.SERVICE_NAMES.items()}


def rpc_methods(service_name):
    component = COMPONENT_OF[service_name]
    service_class = getattr(importlib.import_module(f"{component}.service"), SERVICES[component])
    return {name for name, member in vars_of(service_class).items()
            if any(isinstance(entrypoint, Rpc) for entrypoint in getattr(member, "nameko_entrypoints", ()))}


def vars_of(cls):
    found = {}
    for klass in reversed(cls.__mro__):
        found.update(vars(klass))
    return found


def test_every_granted_call_is_an_rpc_method_of_its_service():
    for component, calls in rpc_access.CALLS.items():
        for service, methods in calls.items():
            missing = set(methods) - rpc_methods(service)
            assert not missing, f"{component} is granted {service}.{sorted(missing)}, which it does not serve"


def test_every_call_the_gateway_makes_is_granted():
    from web_gateway.services import SERVICE_NAMES

    made = set()
    for source in (ROOT / "web_gateway" / "web_gateway").rglob("*.py"):
        text = source.read_text()
        # services().orders.place_order(...), and the admin's side views: side_view("payments", "get_payment", ...)
        for role, method in re.findall(r"services\(\)\.(\w+)\.(\w+)\(", text) + \
                re.findall(r"side_view\(\"(\w+)\", \"(\w+)\"", text):
            made.add((SERVICE_NAMES[role], method))
    made |= {(service, "health") for service in SERVICE_NAMES.values()}  # the readiness probe
    granted = {(service, method) for service, methods in rpc_access.CALLS["web_gateway"].items()
               for method in methods}
    assert len(made) > 20 and made <= granted, sorted(made - granted)


def test_the_publish_and_bind_patterns_keep_to_their_calls():
    write = re.compile(rpc_access.publish_pattern("svc_product"))
    assert write.match("inventory_service.set_stock") and write.match("2f1e4c5a-0b1d-4c3e-9f00-1234567890ab")
    for refused in ("inventory_service.adjust_stock", "inventory_service.set_stock.x", "inventory_service.*",
                    "product_service.update_product", "#"):
        assert not write.match(refused), refused
    read = re.compile(rpc_access.bind_pattern("svc_product"))
    assert read.match("product_service.*") and not read.match("order_service.*") and not read.match("#")


RPC_EXCHANGE = Exchange("nameko-rpc", type="topic", durable=True)


def publish_call(shop, component, routing_key, payload):
    """A call as a service's own login would send it (raw, as a stolen login would)."""
    with Connection(shop.amqp_uri(component).replace("pyamqp", "amqp")) as connection:
        connection.Producer().publish({"args": payload, "kwargs": {}}, exchange=RPC_EXCHANGE,
                                      routing_key=routing_key, reply_to="2f1e4c5a-0b1d-4c3e-9f00-1234567890ab")
        connection.default_channel.basic_qos(0, 0, False)  # a round trip: a refusal arrives before it


def test_the_broker_refuses_calls_a_component_does_not_make(shop, admin, rpc):
    product = admin.create_product(admin, stock=7)
    with ClusterRpcClient(uri=shop.amqp_uri("web_gateway"), timeout=10) as gateway:
        assert gateway.product_service.get_product(product["id"])["stock"] == 7  # its own call works
        with pytest.raises(AccessRefused):
            gateway.inventory_service.set_stock(product["id"], 1000, "forged")
    with pytest.raises(AccessRefused):
        publish_call(shop, "svc_order", "product_service.update_product", [product["id"], {"price": "0.01"}])
    with pytest.raises(AccessRefused):
        publish_call(shop, "svc_payment", "user_service.get_user_by_email", ["admin@shop.local"])
    publish_call(shop, "svc_order", "product_service.check_availability", [[]])  # its own: accepted
    after = rpc.product_service.get_product(product["id"])
    assert (after["stock"], after["price"]) == (7, product["price"])


def test_the_broker_refuses_listening_to_another_service_s_calls(shop):
    with Connection(shop.amqp_uri("svc_payment").replace("pyamqp", "amqp")) as connection:
        own_reply_queue = "rpc.reply-payment_service-2f1e4c5a-0b1d-4c3e-9f00-1234567890ab"
        eavesdropper = Queue(own_reply_queue, RPC_EXCHANGE, routing_key="user_service.*", auto_delete=True)
        with pytest.raises(AccessRefused):
            eavesdropper(connection.default_channel).declare()
