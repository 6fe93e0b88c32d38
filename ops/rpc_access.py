"""Who may call which RPC: each component's own RabbitMQ user, allowed only the calls it makes.

Nameko sends every call to the topic exchange ``nameko-rpc`` with the routing key
``<service>.<method>`` and every reply to it with the caller's reply-queue UUID. RabbitMQ's topic
permissions check those keys: a user may publish only the calls listed for it below (and replies),
and bind only its own service's key (and its reply queues), so a leaked service login cannot set a
price, read users by email or place an order for anyone. Resource permissions keep each user to its
own queues. The operator (``nameko shell``) and the local ``guest`` keep every right.

``make run``, the test stack (``ops/stack.py``) and compose (``ops/compose_env.py``) all load what
``definitions`` makes, so the end-to-end tests run under exactly these rights: a call missing here
fails them. ``tests/test_rpc_access.py`` checks every listed method exists.
"""
import base64
import hashlib
import os
import re

RPC_EXCHANGE = "nameko-rpc"

# The component (process group, as in ops/stack.py) -> its Nameko service name; the gateway serves
# no RPC, and its clients' reply queues are named after nameko's standalone client.
SERVICE_NAMES = {"svc_user": "user_service", "svc_product": "product_service",
                 "svc_inventory": "inventory_service", "svc_order": "order_service",
                 "svc_payment": "payment_service"}
REPLY_QUEUE_OWNER = {**SERVICE_NAMES, "web_gateway": "standalone_rpc_client"}

# Every call a component makes: {component: {service: methods}}. ``health`` is the readiness probe.
CALLS = {
    "web_gateway": {
        "user_service": ("register", "login", "refresh", "logout", "change_password", "get_user", "update_user",
                         "health"),
        "product_service": ("list_products", "get_product", "create_product", "update_product", "health"),
        "inventory_service": ("adjust_stock", "stock_history", "get_reservation", "health"),
        "order_service": ("place_order", "get_order", "list_orders", "list_notifications", "find_orders",
                          "get_order_with_history", "cancel_order", "health"),
        "payment_service": ("apply_stripe_event", "get_payment", "health"),
    },
    "svc_order": {"product_service": ("check_availability",), "user_service": ("get_user", "get_user_by_email")},
    "svc_product": {"inventory_service": ("set_stock",)},
    "svc_user": {},
    "svc_inventory": {},
    "svc_payment": {},
}
COMPONENTS = tuple(CALLS)

UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _either(*alternatives):
    return "^(" + "|".join(alternatives) + ")$"


def resource_pattern(component):
    """The exchange and the component's own queues: its service queue and its reply queues."""
    owned = [re.escape(RPC_EXCHANGE), rf"rpc\.reply-{re.escape(REPLY_QUEUE_OWNER[component])}-{UUID}"]
    if component in SERVICE_NAMES:
        owned.append(re.escape(f"rpc-{SERVICE_NAMES[component]}"))
    return _either(*owned)


def publish_pattern(component):
    """Routing keys the component may publish on nameko-rpc: its calls, and replies to anyone's."""
    calls = [f"{re.escape(service)}\\.({'|'.join(methods)})" for service, methods in CALLS[component].items()]
    return _either(UUID, *calls)


def bind_pattern(component):
    """Routing keys it may bind on nameko-rpc: its service's (``order_service.*``) and its reply queues'."""
    keys = [UUID]
    if component in SERVICE_NAMES:
        keys.append(re.escape(f"{SERVICE_NAMES[component]}.*"))
    return _either(*keys)


def password_hash(password):
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    salt = os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(vhost, passwords, user_names=None, operator=None):
    """RabbitMQ definitions (``rabbitmqctl import_definitions`` or the ``load_definitions`` setting).

    ``passwords`` maps each component to its password; ``user_names`` its user (the component's
    name if not given); ``operator`` a ``(user, password)`` with every right on the vhost.
    """
    user_names = user_names or {component: component for component in COMPONENTS}
    users, permissions, topic_permissions = [], [], []
    for component in COMPONENTS:
        user, resources = user_names[component], resource_pattern(component)
        users.append({"name": user, "password_hash": password_hash(passwords[component]),
                      "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []})
        permissions.append({"user": user, "vhost": vhost, "configure": resources, "write": resources,
                            "read": resources})
        topic_permissions.append({"user": user, "vhost": vhost, "exchange": RPC_EXCHANGE,
                                  "write": publish_pattern(component), "read": bind_pattern(component)})
    if operator:
        name, password = operator
        users.append({"name": name, "password_hash": password_hash(password),
                      "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []})
        permissions.append({"user": name, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"})
    return {"users": users, "vhosts": [{"name": vhost}], "permissions": permissions,
            "topic_permissions": topic_permissions}
