"""docker compose, checked without a Docker engine: its secrets are generated, the production checks
accept every service as compose configures it, and PostgreSQL's init script gives each service its
own role with rights on its own database only (run on a throwaway PostgreSQL cluster)."""
import base64
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ops"))

import compose_env  # noqa: E402
from stack import free_port  # noqa: E402

from shop_common.config import load_config  # noqa: E402
from shop_common.production import check_config  # noqa: E402

COMPOSE = ROOT / "docker-compose.yml"
COMPONENTS = ("svc_user", "svc_product", "svc_inventory", "svc_order", "svc_payment", "web_gateway")


@pytest.fixture
def generated(tmp_path, monkeypatch):
    monkeypatch.setattr(compose_env, "ENV_FILE", tmp_path / ".env")
    monkeypatch.setattr(compose_env, "RABBITMQ_DEFINITIONS", tmp_path / "rabbitmq-definitions.json")
    monkeypatch.setattr(sys, "argv", ["compose_env.py"])
    compose_env.main()
    return compose_env.read_env(tmp_path / ".env"), tmp_path


def interpolate(text, values):
    def value(match):
        name = match.group(1)
        assert name in values, f"docker-compose.yml uses ${{{name}}}, which make compose-env does not write"
        return values[name]
    return re.sub(r"\$\{(\w+):\?[^}]*\}", value, text)


def test_every_secret_compose_reads_is_generated_strong_and_kept(generated, monkeypatch):
    values, where = generated
    assert oct((where / ".env").stat().st_mode & 0o777) == "0o600"
    for name, value in values.items():
        secret = value.split("=", 1)[-1] if name != "SHOP_EVENT_KEYS" else None
        if secret is not None:
            assert len(secret.encode()) >= 32, name
    interpolate(COMPOSE.read_text(), values)  # every ${VAR:?...} has a value
    compose_env.main()
    assert compose_env.read_env(where / ".env") == values  # kept on a second run
    monkeypatch.setattr(sys, "argv", ["compose_env.py", "--force"])
    compose_env.main()
    assert compose_env.read_env(where / ".env")["SHOP_JWT_SECRET"] != values["SHOP_JWT_SECRET"]


def test_rabbitmq_users_are_one_per_component_with_only_its_calls_and_an_operator(generated):
    values, where = generated
    import json

    definitions = json.loads((where / "rabbitmq-definitions.json").read_text())
    users = {user["name"]: user for user in definitions["users"]}
    assert set(users) == set(COMPONENTS) | {"operator"} and "guest" not in users
    for name, user in users.items():
        raw = base64.b64decode(user["password_hash"])
        salt, digest = raw[:4], raw[4:]
        assert digest == hashlib.sha256(salt + values[f"RABBITMQ_PASSWORD_{name.upper()}"].encode()).digest()
    assert {(p["user"], p["vhost"]) for p in definitions["permissions"]} == {(name, "shop") for name in users}
    topic = {p["user"]: p for p in definitions["topic_permissions"]}
    assert set(topic) == set(COMPONENTS)  # the operator alone may call anything
    assert all(p["exchange"] == "nameko-rpc" and p["vhost"] == "shop" for p in topic.values())
    assert re.match(topic["svc_order"]["write"], "product_service.check_availability")
    assert not re.match(topic["svc_order"]["write"], "product_service.update_product")


def test_production_checks_accept_every_service_as_compose_runs_it(generated, monkeypatch):
    values, _ = generated
    services = yaml.safe_load(interpolate(COMPOSE.read_text(), values))["services"]
    for service in COMPONENTS:
        environment = {key: str(value) for key, value in services[service]["environment"].items()}
        assert environment["SHOP_ENV"] == "production"
        for key in [key for key in os.environ if key.startswith(("SHOP_", "STRIPE_", "AMQP_", "KAFKA_"))
                    or key.endswith("DATABASE_URL")]:
            monkeypatch.delenv(key)
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        check_config(load_config(ROOT / service / "config.yaml"), environment)  # raises on anything weak
    for published in [port for service in services.values() for port in service.get("ports", ())]:
        assert published.startswith("127.0.0.1:"), published


@contextlib.contextmanager
def throwaway_postgres():
    """A PostgreSQL cluster of its own, password logins over TCP as in a container: (port, socket dir)."""
    binaries = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    assert binaries, "PostgreSQL's server binaries (Debian's postgresql package) are needed"
    # A directory of its own the postgres user can reach (pytest's are private to root).
    bin_dir, port, data = binaries[-1].parent, free_port(), Path(tempfile.mkdtemp(prefix="shop-compose-pg-"))
    shutil.chown(data, "postgres")
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(as_postgres + [str(bin_dir / "initdb"), "-D", str(data / "db"), "-U", "postgres",
                                  "--auth-local=trust", "--auth-host=scram-sha-256"], check=True, capture_output=True)
    subprocess.run(as_postgres + [str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-w", "-l", str(data / "log"),
                                  "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        yield port, data
    finally:
        subprocess.run(as_postgres + [str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def assert_each_service_owns_its_database_only(port, passwords):
    """Every service migrates its own database as itself; none can reach another's (``passwords``:
    PG_PASSWORD_<ROLE> -> password)."""
    def url(role, database):
        return f"postgresql+psycopg2://{role}:{passwords['PG_PASSWORD_' + role.upper()]}@127.0.0.1:{port}/{database}"

    migrations = [("svc_user", "USERS_DATABASE_URL", "shop_users"),
                  ("svc_product", "PRODUCTS_DATABASE_URL", "shop_products"),
                  ("svc_inventory", "PRODUCTS_DATABASE_URL", "shop_products"),
                  ("svc_order", "ORDERS_DATABASE_URL", "shop_orders"),
                  ("svc_payment", "PAYMENTS_DATABASE_URL", "shop_payments")]

    def migrate(role, variable, database):
        return subprocess.Popen([sys.executable, "-m", "alembic", "-c", "alembic.ini", "upgrade", "head"],
                                cwd=ROOT / role, env=dict(os.environ, **{variable: url(role, database)}),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    for batch in (migrations[:2] + migrations[3:], migrations[2:3]):  # Inventory after Product, as in the stack
        running = [migrate(*migration) for migration in batch]
        for process in running:
            output, _ = process.communicate(timeout=120)
            assert process.returncode == 0, output.decode()[-2000:]

    def psql(role, database, sql):
        return subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", role, "-d", database,
                               "-Atc", sql], env=dict(os.environ, PGPASSWORD=passwords["PG_PASSWORD_" + role.upper()]),
                              capture_output=True, text=True)

    assert psql("svc_inventory", "shop_products", "UPDATE products SET stock = stock WHERE false").returncode == 0
    assert "permission denied" in psql("svc_product", "shop_products", "SELECT 1 FROM stock_ledger").stderr
    for role, database in (("svc_order", "shop_users"), ("svc_inventory", "shop_orders"),
                           ("svc_payment", "shop_orders"), ("svc_user", "shop_payments")):
        assert "CONNECT privilege" in psql(role, database, "SELECT 1").stderr, (role, database)


def test_postgres_init_gives_each_service_its_own_database_only(generated):
    values, _ = generated
    passwords = {name: value for name, value in values.items() if name.startswith("PG_PASSWORD_")}
    with throwaway_postgres() as (port, socket_dir):
        env = dict(os.environ, POSTGRES_USER="postgres", PGHOST=str(socket_dir), PGPORT=str(port), **passwords)
        subprocess.run(["sh", str(ROOT / "ops" / "docker" / "postgres-init.sh")], env=env, check=True,
                       capture_output=True)
        assert_each_service_owns_its_database_only(port, passwords)


def test_kafka_users_write_only_the_topics_they_own_and_read_what_they_subscribe_to():
    """ops/kafka_access.py, which compose's kafka-setup script is made from (make deploy-check holds it current)."""
    import kafka_access
    from shop_common.messaging import events

    writers = {}
    for component in ("svc_user", "svc_product", "svc_inventory", "svc_order", "svc_payment"):
        for operation, resource, name in kafka_access.acls(component):
            if operation == "Write":
                writers.setdefault(name, set()).add(component)
    assert writers[events.ORDERS_TOPIC] == {"svc_order"}
    assert writers[events.INVENTORY_TOPIC] == {"svc_inventory"}
    assert writers[events.PAYMENTS_TOPIC] == {"svc_payment"}
    assert writers[events.DEAD_LETTER_TOPIC] == {"svc_inventory", "svc_order", "svc_payment"}  # the consumers
    payment = kafka_access.acls("svc_payment")
    assert ("Read", "topic", events.ORDERS_TOPIC) in payment and ("Read", "group", "payment_service") in payment
    assert ("Read", "group", "order_service") not in payment
    assert not [acl for acl in kafka_access.acls("svc_user") if acl[0] == "Write"]  # no handler, no topic


def test_the_committed_kafka_setup_script_is_current_and_takes_passwords_from_the_environment():
    import deploy_check
    import kafka_access

    compose_file = yaml.safe_load(COMPOSE.read_text())
    assert deploy_check.kafka_access_problems(compose_file) == []
    script = (ROOT / "ops" / "docker" / "kafka-setup.sh").read_text()
    assert "$KAFKA_PASSWORD_SVC_ORDER]" in script and "$KAFKA_ADMIN_PASSWORD" in script
    compose_file["services"]["svc_order"]["environment"]["KAFKA_USERNAME"] = "svc_payment"
    assert deploy_check.kafka_access_problems(compose_file) == [
        "svc_order: does not log in to Kafka as svc_order with KAFKA_PASSWORD_SVC_ORDER"]
    assert kafka_access.setup_script() == script
