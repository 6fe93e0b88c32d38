"""What a process refuses to start with: no secret at all, anywhere; in production, nothing a stranger could guess.

Every process runs ``check_config`` on its own configuration before it
serves anything. Outside production only a missing secret is refused (``make
run`` and the test stack generate theirs). With ``SHOP_ENV=production`` a
secret must also be at least 32 bytes and not a value published anywhere
(this repository's old defaults, localstripe's key), the admin password must
not be the development one, and RabbitMQ and PostgreSQL must not be reached
with their default logins; a service that logs in to Kafka (SASL) needs its user and a real password. The error names each variable at fault.
"""
import os
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

MIN_SECRET_BYTES = 32
DEVELOPMENT_ADMIN_PASSWORD = "shop-admin-dev"
# Published values: in this repository's history, in localstripe's documentation, in tutorials.
KNOWN_DEFAULTS = {"dev-only-secret-change-me-0123456789abcdef", "sk_test_localstripe", "changeme", "secret",
                  "whsec_test", DEVELOPMENT_ADMIN_PASSWORD}
DEFAULT_LOGINS = {("guest", "guest"), ("postgres", ""), ("postgres", "postgres"), ("postgres", "password")}


class UnsafeConfiguration(RuntimeError):
    """The process must not start with this configuration; the message says which variables to set."""


def _secret(value, variable, production, required=True):
    if not value:
        return [f"{variable} is not set"] if required or production else []
    if production and len(value.encode()) < MIN_SECRET_BYTES:
        return [f"{variable} is shorter than {MIN_SECRET_BYTES} bytes"]
    if production and value in KNOWN_DEFAULTS:
        return [f"{variable} is a published default"]
    return []


def _admin_password(value, variable, production):
    if not value:
        return [f"{variable} is not set"]
    if production and (value == DEVELOPMENT_ADMIN_PASSWORD or len(value) < 12):
        return [f"{variable} is the development password or shorter than 12 characters"]
    return []


def _event_keys(value, variable, production):
    from shop_common.messaging.event_signing import parse_keys  # imports nameko config: only when a service checks

    try:
        keys = parse_keys(value)
    except ValueError as exc:
        return [f"{variable}: {exc}"]
    if not keys:
        return [f"{variable} is not set"]
    return [problem for name, key in keys.items()
            for problem in _secret(key.decode(), f"{variable} ({name})", production)]


def _login(url, variable, production, what):
    if not production or not url:
        return []
    parts = urlsplit(str(url))
    login = (unquote(parts.username or ""), unquote(parts.password or ""))
    if login in DEFAULT_LOGINS or not login[1] or login[0] == "postgres":
        return [f"{variable} uses {what}'s default login (give each service its own user and password)"]
    return []


# (path in the config, the variable that sets it, how to check it)
CHECKS = (
    (("AUTH", "jwt_secret"), "SHOP_JWT_SECRET", lambda v, n, p: _secret(v, n, p)),
    (("AUTH", "admin_password"), "SHOP_ADMIN_PASSWORD", _admin_password),
    (("STRIPE", "webhook_secret"), "STRIPE_WEBHOOK_SECRET", lambda v, n, p: _secret(v, n, p, required=False)),
    (("STRIPE", "api_key"), "STRIPE_API_KEY", lambda v, n, p: _secret(v, n, p)),
    (("EVENTS", "keys"), "SHOP_EVENT_KEYS", lambda v, n, p: _event_keys(v, n, p)),
    (("AMQP_URI",), "AMQP_URI", lambda v, n, p: _login(v, n, p, "RabbitMQ")),
    (("DATABASE_URL",), "the service's *_DATABASE_URL", lambda v, n, p: _login(v, n, p, "PostgreSQL")),
)


def is_production(env=None):
    return (env if env is not None else os.environ).get("SHOP_ENV", "development").lower() == "production"


def _lookup(config, path):
    for key in path:
        if not isinstance(config, Mapping) or key not in config:
            return None, False
        config = config[key]
    return ("" if config is None else str(config)), True


def _kafka_login(kafka, production):
    """With SASL on (compose), the service's own Kafka user and a real password."""
    if not isinstance(kafka, Mapping) or str(kafka.get("security_protocol") or "PLAINTEXT").upper() == "PLAINTEXT":
        return []
    found = [] if kafka.get("username") else ["KAFKA_USERNAME is not set"]
    return found + _secret(str(kafka.get("password") or ""), "KAFKA_PASSWORD", production)


def problems(config, production):
    found = []
    for path, variable, check in CHECKS:
        value, present = _lookup(config, path)
        if present:
            found += check(value, variable, production)
    return found + _kafka_login(config.get("KAFKA") if isinstance(config, Mapping) else None, production)


def check_config(config, env=None):
    """Raise UnsafeConfiguration naming every variable at fault; return quietly otherwise."""
    production = is_production(env)
    found = problems(config, production)
    if found:
        where = "SHOP_ENV=production" if production else "development"
        raise UnsafeConfiguration(f"refusing to start ({where}): " + "; ".join(found))
