"""What a process refuses to start with: checked on configs, and on real processes started with them."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shop_common.production import UnsafeConfiguration, check_config

ROOT = Path(__file__).resolve().parents[2]
STRONG = "k" * 40
SAFE = {
    "AMQP_URI": "pyamqp://svc_user:Zq8v3nT1x@rabbitmq:5672/shop",
    "DATABASE_URL": "postgresql+psycopg2://svc_user:Zq8v3nT1x@postgres:5432/shop_users",
    "AUTH": {"jwt_secret": STRONG, "admin_password": "a long admin passphrase"},
    "STRIPE": {"api_key": "sk_live_" + "x" * 30, "webhook_secret": "whsec_" + "y" * 32},
    "EVENTS": {"keys": f"order_service={STRONG},payment_service={'p' * 32}"},
    "KAFKA": {"security_protocol": "SASL_PLAINTEXT", "username": "svc_user", "password": STRONG},
}
PRODUCTION = {"SHOP_ENV": "production"}


def refusal(config, env):
    with pytest.raises(UnsafeConfiguration) as refused:
        check_config(config, env)
    return str(refused.value)


def changed(path, value):
    config = {key: dict(value) if isinstance(value, dict) else value for key, value in SAFE.items()}
    *parents, last = path
    target = config
    for key in parents:
        target = target[key]
    target[last] = value
    return config


def test_a_safe_configuration_starts_in_production():
    check_config(SAFE, PRODUCTION)


@pytest.mark.parametrize("path, value, variable", [
    (("AUTH", "jwt_secret"), "", "SHOP_JWT_SECRET is not set"),
    (("AUTH", "jwt_secret"), "short-secret", "SHOP_JWT_SECRET is shorter than 32 bytes"),
    (("AUTH", "jwt_secret"), "dev-only-secret-change-me-0123456789abcdef", "SHOP_JWT_SECRET is a published default"),
    (("AUTH", "admin_password"), "shop-admin-dev", "SHOP_ADMIN_PASSWORD is the development password"),
    (("STRIPE", "webhook_secret"), None, "STRIPE_WEBHOOK_SECRET is not set"),
    (("STRIPE", "api_key"), "sk_test_localstripe", "STRIPE_API_KEY is shorter"),
    (("EVENTS", "keys"), "", "SHOP_EVENT_KEYS is not set"),
    (("EVENTS", "keys"), f"order_service={STRONG},payment_service=short", "SHOP_EVENT_KEYS (payment_service) is sh"),
    (("EVENTS", "keys"), "order_service", "SHOP_EVENT_KEYS: SHOP_EVENT_KEYS must read name=key"),
    (("AMQP_URI",), "pyamqp://guest:guest@rabbitmq:5672/", "AMQP_URI uses RabbitMQ's default login"),
    (("DATABASE_URL",), "postgresql+psycopg2://postgres:postgres@db/shop_users", "_DATABASE_URL uses PostgreSQL"),
    (("DATABASE_URL",), "postgresql+psycopg2://svc_user@db/shop_users", "_DATABASE_URL uses PostgreSQL"),
    (("KAFKA", "password"), "", "KAFKA_PASSWORD is not set"),
    (("KAFKA", "password"), "short", "KAFKA_PASSWORD is shorter than 32 bytes"),
    (("KAFKA", "username"), None, "KAFKA_USERNAME is not set"),
])
def test_production_refuses_each_unsafe_setting_by_name(path, value, variable):
    assert variable in refusal(changed(path, value), PRODUCTION)


def test_kafka_without_sasl_needs_no_login():
    check_config(changed(("KAFKA",), {"security_protocol": "PLAINTEXT", "username": "", "password": ""}), PRODUCTION)


def test_development_refuses_only_a_missing_secret():
    development = {"AMQP_URI": "pyamqp://guest:guest@127.0.0.1:5672/", "AUTH": {"jwt_secret": "dev", "admin_password": "x"},
                   "STRIPE": {"api_key": "sk_test_localstripe", "webhook_secret": ""}}
    check_config(development, {})
    assert "SHOP_JWT_SECRET is not set" in refusal(changed(("AUTH", "jwt_secret"), ""), {})


def test_every_problem_is_named_at_once():
    message = refusal({"AUTH": {"jwt_secret": "", "admin_password": ""}, "AMQP_URI": "pyamqp://guest:guest@h/"},
                      PRODUCTION)
    assert message.count(";") == 2 and "SHOP_ENV=production" in message


def run(argv, cwd, **env):
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("SHOP_", "STRIPE_"))}
    return subprocess.run(argv, cwd=cwd, env=dict(environment, **env), capture_output=True, text=True, timeout=60)


def test_a_service_refuses_to_start_before_it_connects_anywhere():
    """The User service with the old committed secret: it exits naming it, before touching a database that is not
    there (a database error would be what it said otherwise)."""
    done = run([sys.executable, "-m", "nameko", "run", "--config", "config.yaml", "svc_user.service:UserService"],
               ROOT / "svc_user", SHOP_ENV="production", SHOP_JWT_SECRET="dev-only-secret-change-me-0123456789abcdef",
               SHOP_ADMIN_PASSWORD="a long admin passphrase", USERS_DATABASE_URL="postgresql+psycopg2://nobody@127.0.0.1:1/x")
    assert done.returncode != 0
    assert "UnsafeConfiguration: refusing to start (SHOP_ENV=production): SHOP_JWT_SECRET is a published default" \
        in done.stderr
    assert "OperationalError" not in done.stderr


def test_the_gateway_refuses_to_start_without_a_secret():
    done = run([sys.executable, "-c", "from web_gateway.app import create_app; create_app()"], ROOT)
    assert done.returncode != 0
    assert "refusing to start (development): SHOP_JWT_SECRET is not set" in done.stderr
