"""deploy/k8s and docker-compose.yml, checked without a cluster (ops/deploy_check.py, `make deploy-check`):
both overlays render and validate, the three ways of running the shop agree, each check fails on the
drift it is there for, and the production PostgreSQL bootstrap gives each service its own database."""
import copy
import os
import random
import string
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ops"))

import compose_env  # noqa: E402
import deploy_check  # noqa: E402

from shop_common.config import load_config  # noqa: E402
from shop_common.production import check_config  # noqa: E402
from tests.test_compose import assert_each_service_owns_its_database_only, throwaway_postgres  # noqa: E402


@pytest.fixture(scope="module")
def rendered():
    return {overlay: deploy_check.render(overlay) for overlay in deploy_check.OVERLAYS}


@pytest.fixture(scope="module")
def compose_file():
    return deploy_check.compose()


def test_every_overlay_validates_and_agrees_with_compose_and_the_local_runner():
    rendered, problems, unvalidated = deploy_check.check()
    assert problems == []
    kinds = {resource["kind"] for resource in rendered["production"]}
    assert {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ConfigMap"} <= kinds
    # Only the operators' resources go unvalidated, and the dev overlay has none.
    assert unvalidated and all(name.startswith("[production] ") for name in unvalidated)
    assert {name.split("/")[0].split()[-1] for name in unvalidated} == {
        "Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser", "Cluster", "RabbitmqCluster"}


def test_a_misspelt_or_mistyped_field_is_refused_by_the_schemas(rendered):
    deployment = copy.deepcopy(next(r for r in rendered["dev"] if r["kind"] == "Deployment"))
    deployment["spec"]["replica"] = 2
    service = copy.deepcopy(next(r for r in rendered["dev"] if r["kind"] == "Service"))
    service["spec"]["ports"][0]["port"] = "http"
    problems, _ = deploy_check.schema_problems([deployment, service])
    assert len(problems) == 2, problems


def test_each_consistency_check_fails_on_its_drift(rendered, compose_file):
    dev = rendered["dev"]

    def pod(resources, name):
        return next(r for r in resources if r["kind"] == "Deployment" and r["metadata"]["name"] == name)

    drifted = copy.deepcopy(compose_file)
    del drifted["services"]["svc_order"]["environment"]["SHOP_EVENT_KEYS"]
    drifted["services"]["svc_product"]["environment"]["SHOP_JWT_SECRET"] = "x"
    problems = deploy_check.environment_problems(dev, drifted)
    assert any(p.startswith("svc_order: variables only in Kubernetes ['SHOP_EVENT_KEYS']") for p in problems)
    assert any("svc_product is given secrets it never reads in compose" in p for p in problems)

    unknown = copy.deepcopy(dev)
    pod(unknown, "svc-user")["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "SHOP_NEW_SECRET", "valueFrom": {"secretKeyRef": {"name": "shop-secrets", "key": "SHOP_NEW_SECRET"}}})
    assert "svc_user: the local runner has no ['SHOP_NEW_SECRET']" in deploy_check.environment_problems(
        unknown, compose_file)

    moved = copy.deepcopy(dev)
    container = pod(moved, "svc-payment")["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["path"] = "/metrics"
    assert deploy_check.port_and_probe_problems(moved, compose_file) == [
        "svc_payment: readiness ('/metrics', 9105) in Kubernetes, healthcheck ('/health/ready', 9105) in compose; "
        "expected ('/health/ready', 9105)"]

    hurried = copy.deepcopy(dev)
    pod(hurried, "svc-order")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 30
    pod(hurried, "web-gateway")["spec"]["template"]["spec"]["containers"][0]["command"][-1] = "app:other"
    problems = deploy_check.command_problems(hurried, compose_file)
    assert len(problems) == 2, problems
    assert any(p.startswith("web_gateway: command") for p in problems)
    assert any(p.startswith("svc_order: 30 s to stop in Kubernetes") for p in problems)

    loose = copy.deepcopy(dev)
    pod(loose, "svc-user")["spec"]["template"]["spec"]["initContainers"][0]["securityContext"].pop("readOnlyRootFilesystem")
    assert deploy_check.hardening_problems(loose) == ["svc_user/migrate: not hardened"]

    production = copy.deepcopy(rendered["production"])
    next(r for r in production if r["kind"] == "KafkaTopic")["spec"]["partitions"] = 6
    pod(production, "svc-order")["spec"]["template"]["spec"]["containers"][0]["image"] += "-rc"
    assert len(deploy_check.topic_problems(dev, production, compose_file)) == 1
    next(r for r in production if r["kind"] == "KafkaUser")["spec"]["authorization"]["acls"][0]["operations"] += [
        "Write"]
    env = pod(production, "svc-payment")["spec"]["template"]["spec"]["containers"][0]["env"]
    next(variable for variable in env if variable["name"] == "KAFKA_USERNAME")["value"] = "svc-order"
    assert [problem.split(":")[0] for problem in deploy_check.kafka_access_problems(compose_file, production)] == [
        "deploy/k8s/overlays/production/kafka-users.yaml is not what ops/kafka_access.py makes",
        "[production] svc_payment"]
    version = tomllib.loads((ROOT / "svc_order" / "pyproject.toml").read_text())["project"]["version"]
    assert deploy_check.image_problems(production) == [
        f"svc_order: image registry.example.com/shop/svc_order:{version}-rc is not version {version}"]


def _resolved_env(resources, container, secrets):
    """A container's environment as the kubelet would build it: ConfigMaps, Secrets, $(VAR) expansion."""
    maps = deploy_check.by_kind(resources, "ConfigMap")
    env = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]]["data"])
    for variable in container.get("env", []):
        if "value" in variable:
            value = variable["value"]
            for name, known in env.items():
                value = value.replace(f"$({name})", known)
            env[variable["name"]] = value
        else:
            reference = variable["valueFrom"]["secretKeyRef"]
            env[variable["name"]] = secrets[reference["name"]][reference["key"]]
    return env


def test_production_checks_accept_every_component_as_kubernetes_runs_it(rendered, tmp_path, monkeypatch):
    values = compose_env.wanted()
    compose_env.write_k8s_secrets(values, tmp_path)
    secrets = {"shop-secrets": compose_env.read_env(tmp_path / "shop.env")}
    for owner in compose_env.DATABASE_OWNERS:
        name = f"postgres-{owner.replace('_', '-')}"
        secrets[name] = compose_env.read_env(tmp_path / f"{name}.env")
        # Strimzi's User Operator: a Secret per KafkaUser, a generated password of 32 characters by default
        secrets[owner.replace("_", "-")] = {"password": "".join(random.choices(string.ascii_letters, k=32))}
    for component, pod in deploy_check.shop_pods(rendered["production"]).items():
        environment = _resolved_env(rendered["production"], pod["spec"]["containers"][0], secrets)
        assert environment["SHOP_ENV"] == "production" and "$(" not in str(environment)
        for key in [key for key in os.environ if key.startswith(("SHOP_", "STRIPE_", "AMQP_", "KAFKA_", "REDIS_"))
                    or key.endswith("DATABASE_URL")]:
            monkeypatch.delenv(key)
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        check_config(load_config(ROOT / component / "config.yaml"), environment)  # raises on anything weak


def test_the_production_postgres_bootstrap_gives_each_service_its_own_database_only(rendered):
    """CloudNativePG's bootstrap, replayed by hand on a throwaway cluster: postInitSQL in postgres,
    the application database for its owner, postInitApplicationSQL in it, then the managed roles'
    logins; the services migrate and stay out of each other's databases, as with compose."""
    cluster = next(r for r in rendered["production"] if r["kind"] == "Cluster")
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    passwords = {f"PG_PASSWORD_{owner.upper()}": f"pw-{owner}-0123456789" for owner in compose_env.DATABASE_OWNERS}
    with throwaway_postgres() as (port, socket_dir):
        def superuser(database, sql):
            subprocess.run(["psql", "-h", str(socket_dir), "-p", str(port), "-U", "postgres", "-d", database,
                            "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True)

        superuser("postgres", f"CREATE ROLE {initdb['owner']} LOGIN PASSWORD "
                              f"'{passwords['PG_PASSWORD_' + initdb['owner'].upper()]}'")
        superuser("postgres", f"CREATE DATABASE {initdb['database']} OWNER {initdb['owner']}")
        for statement in initdb["postInitSQL"]:
            superuser("postgres", statement)
        for statement in initdb["postInitApplicationSQL"]:
            superuser(initdb["database"], statement)
        for role in cluster["spec"]["managed"]["roles"]:
            assert role["passwordSecret"]["name"] == f"postgres-{role['name'].replace('_', '-')}"
            superuser("postgres", f"ALTER ROLE {role['name']} LOGIN PASSWORD "
                                  f"'{passwords['PG_PASSWORD_' + role['name'].upper()]}'")
        assert_each_service_owns_its_database_only(port, passwords)


def test_deploy_check_command_passes():
    result = subprocess.run([sys.executable, str(ROOT / "ops" / "deploy_check.py")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "passed" in result.stdout.splitlines()[-1]
