"""``make deploy-check``: the deployment descriptions, checked without a cluster or a Docker engine.

1. Renders every Kustomize overlay of ``deploy/k8s`` (``kubectl kustomize``; the dev overlay with
   throwaway secrets) and validates every resource against the Kubernetes schemas offline
   (``kubernetes-validate``, strict: an unknown field is an error). The operators' resources
   (Strimzi, CloudNativePG, RabbitMQ) have no schema here; they are listed as not validated.
2. Validates ``docker-compose.yml`` against the compose specification (check-jsonschema's
   vendored ``compose-spec`` schema).
3. Checks that compose, Kubernetes and the local runner (``ops/stack.py``) agree where it matters:
   each component's variables and secrets, ports, probes, commands, topics and partitions, image tags,
   and the pod hardening of every component.

Each check returns a list of problems; ``tests/test_deploy.py`` runs them in ``make test``.
"""
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ops"))

import compose_env  # noqa: E402
import rpc_access  # noqa: E402
import stack  # noqa: E402

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "production")
KUBERNETES_VERSION = "1.32.0"
OPERATOR_GROUPS = ("kafka.strimzi.io", "postgresql.cnpg.io", "rabbitmq.com")
COMPONENTS = tuple(stack.METRICS_ENV)  # web_gateway and the five services
GATEWAY_PORT = 8000
DEV_METRICS_PORTS = stack.PROFILES["dev"].metrics_ports()
# Set in Kubernetes only to build AMQP_URI and the database URL from Secrets ($(VAR) expansion).
K8S_HELPERS = {"RABBITMQ_PASSWORD", "PG_PASSWORD"}
# Set in Kubernetes only: a read-only root filesystem has no room for bytecode caches.
K8S_ONLY = {"PYTHONDONTWRITEBYTECODE"}
# Kafka's SASL login: compose's and production's Kafka require it, the dev overlay's single broker does
# not; kafka_access_problems checks these where they belong.
KAFKA_LOGIN = {"KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_USERNAME", "KAFKA_PASSWORD"}
SECRETS = set(compose_env.K8S_SHOP_SECRETS)


def deployment_name(component):
    return component.replace("_", "-")


# -- rendering ----------------------------------------------------------------
def render(overlay):
    """Every resource of one overlay, as dicts. The tree is copied so the dev overlay's secret files
    (generated, git-ignored) can be written without touching the checkout."""
    if shutil.which("kubectl") is None:
        raise RuntimeError("kubectl is needed to render the overlays (apt-get install kubectl, or any "
                           "kubectl >= 1.27, whose built-in kustomize reads these files)")
    with tempfile.TemporaryDirectory(prefix="shop-deploy-") as scratch:
        copy = Path(scratch)
        shutil.copytree(K8S, copy / "deploy" / "k8s", ignore=shutil.ignore_patterns("secrets"))
        shutil.copytree(ROOT / "ops" / "docker", copy / "ops" / "docker")
        compose_env.write_k8s_secrets(compose_env.wanted(), copy / "deploy/k8s/overlays/dev/secrets")
        rendered = subprocess.run(["kubectl", "kustomize", str(copy / "deploy/k8s/overlays" / overlay)],
                                  capture_output=True, text=True)
    if rendered.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay}: {rendered.stderr.strip()}")
    return [resource for resource in yaml.safe_load_all(rendered.stdout) if resource]


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def by_kind(resources, kind):
    return {resource["metadata"]["name"]: resource for resource in resources if resource["kind"] == kind}


# -- 1 and 2: schemas -----------------------------------------------------------
def schema_problems(resources):
    """(problems, names of the operator resources that could not be validated here)."""
    import kubernetes_validate

    problems, unvalidated = [], []
    for resource in resources:
        name = f"{resource['kind']}/{resource['metadata']['name']}"
        if resource["apiVersion"].split("/")[0] in OPERATOR_GROUPS:
            unvalidated.append(name)
            continue
        try:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{name}: {error.message} at {'.'.join(str(part) for part in error.path)}")
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{name}: no Kubernetes {KUBERNETES_VERSION} schema for {resource['apiVersion']}")
    return problems, unvalidated


def compose_schema_problems():
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run([str(checker), "--builtin-schema", "vendor.compose-spec",
                             str(ROOT / "docker-compose.yml")], capture_output=True, text=True)
    return [] if result.returncode == 0 else [(result.stdout + result.stderr).strip()]


# -- 3: consistency -------------------------------------------------------------
def shop_pods(resources):
    """component -> its Deployment's pod spec."""
    deployments = by_kind(resources, "Deployment")
    return {component: deployments[deployment_name(component)]["spec"]["template"]
            for component in COMPONENTS if deployment_name(component) in deployments}


def main_container(pod):
    return pod["spec"]["containers"][0]


def k8s_env_names(container):
    return {variable["name"] for variable in container.get("env", [])} - K8S_HELPERS - K8S_ONLY


def config_map_keys(resources, container):
    maps = by_kind(resources, "ConfigMap")
    return {key for source in container.get("envFrom", []) for key in maps[source["configMapRef"]["name"]]["data"]}


def reads(component):
    """The variables a component's config.yaml reads."""
    text = (ROOT / component / "config.yaml").read_text()
    return set(re.findall(r"\$\{([A-Z0-9_]+)", text))


def secret_keys(container):
    return {variable["valueFrom"]["secretKeyRef"]["key"] for variable in container.get("env", [])
            if "secretKeyRef" in variable.get("valueFrom", {})}


def development_defaults(component):
    """The variables a component's config.yaml gives a development value of its own (e.g. localstripe's key)."""
    text = (ROOT / component / "config.yaml").read_text()
    return set(re.findall(r"\$\{([A-Z0-9_]+):[^}]+\}", text))


def environment_problems(resources, compose_file):
    runner_secrets = set(stack.development_secrets())
    problems = []
    pods = shop_pods(resources)
    for component in COMPONENTS:
        container = main_container(pods[component])
        in_k8s = (k8s_env_names(container) | config_map_keys(resources, container)) - K8S_ONLY - KAFKA_LOGIN
        in_compose = set(compose_file["services"][component]["environment"]) - KAFKA_LOGIN
        if in_k8s != in_compose:
            problems.append(f"{component}: variables only in Kubernetes {sorted(in_k8s - in_compose)}, "
                            f"only in compose {sorted(in_compose - in_k8s)}")
        for where, names in (("Kubernetes", in_k8s), ("compose", in_compose)):
            extra = (names & SECRETS) - reads(component)
            if extra:
                problems.append(f"{component} is given secrets it never reads in {where}: {sorted(extra)}")
        missing = {key for key in secret_keys(container) if key.startswith(("SHOP_", "STRIPE_", "RABBITMQ_"))} \
            - runner_secrets - development_defaults(component)
        if missing:
            problems.append(f"{component}: the local runner has no {sorted(missing)}")
    return problems


def _probe(container, kind):
    probe = container.get(kind) or {}
    get = probe.get("httpGet")
    if not get:
        return None
    ports = {port["name"]: port["containerPort"] for port in container.get("ports", [])}
    return get["path"], ports.get(get["port"], get["port"])


def _compose_healthcheck(service):
    test = " ".join(service.get("healthcheck", {}).get("test", []))
    found = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/]*)", test)
    return (found.group(2), int(found.group(1))) if found else None


def port_and_probe_problems(resources, compose_file):
    problems = []
    pods = shop_pods(resources)
    for component in COMPONENTS:
        pod, service = pods[component], compose_file["services"][component]
        container = main_container(pod)
        metrics_port = DEV_METRICS_PORTS[component]
        declared = {port["name"]: port["containerPort"] for port in container.get("ports", [])}
        if declared.get("metrics") != metrics_port:
            problems.append(f"{component}: metrics port {declared.get('metrics')} in Kubernetes, {metrics_port} locally")
        if pod["metadata"].get("annotations", {}).get("prometheus.io/port") != str(metrics_port):
            problems.append(f"{component}: Prometheus annotation does not name port {metrics_port}")
        default = re.search(r"METRICS_PORT:(\d+)", (ROOT / component / "config.yaml").read_text()) \
            if component != "web_gateway" else None
        if default and int(default.group(1)) != metrics_port:
            problems.append(f"{component}: config.yaml's METRICS_PORT default {default.group(1)} is not {metrics_port}")
        if component == "web_gateway":
            wanted = ("/health", GATEWAY_PORT)
            if declared.get("http") != GATEWAY_PORT or service["ports"] != [f"127.0.0.1:{GATEWAY_PORT}:{GATEWAY_PORT}"]:
                problems.append(f"web_gateway: HTTP port differs from {GATEWAY_PORT}")
        else:
            wanted = ("/health/ready", metrics_port)
        ready, live = _probe(container, "readinessProbe"), _probe(container, "livenessProbe")
        if ready != wanted or _compose_healthcheck(service) != wanted:
            problems.append(f"{component}: readiness {ready} in Kubernetes, healthcheck "
                            f"{_compose_healthcheck(service)} in compose; expected {wanted}")
        if live is None or live[1] != wanted[1]:
            problems.append(f"{component}: no liveness probe on port {wanted[1]}")
    return problems


def _compose_command(service):
    command = service["command"]
    if command[:2] == ["sh", "-c"]:
        return command[2].rsplit("exec ", 1)[1].split()
    return command


def command_problems(resources, compose_file):
    problems = []
    pods = shop_pods(resources)
    runner = stack.Stack.__new__(stack.Stack)  # its programs only: nothing started, no files written
    runner.profile = stack.PROFILES["dev"]
    programs = runner._programs()
    for component in COMPONENTS:
        in_k8s = main_container(pods[component])["command"]
        local = [Path(part).name if index == 0 else part for index, part in enumerate(programs[component].argv)]
        if not in_k8s == _compose_command(compose_file["services"][component]) == local:
            problems.append(f"{component}: command {in_k8s} in Kubernetes, "
                            f"{_compose_command(compose_file['services'][component])} in compose, {local} locally")
        grace = pods[component]["spec"].get("terminationGracePeriodSeconds", 30)
        if grace <= programs[component].stop_wait_seconds:
            problems.append(f"{component}: {grace} s to stop in Kubernetes, not more than the "
                            f"{programs[component].stop_wait_seconds} s the local runner allows")
    return problems


def _loop_topics(script):
    found = re.search(r"for topic in ([\w. ]+); do.*?--partitions (\d+)", script, re.S)
    return (found.group(1).split(), int(found.group(2))) if found else (None, None)


def _created_topics(script):
    created = re.findall(r"--create --if-not-exists --topic (\S+) --partitions (\d+)", script)
    return [topic for topic, _ in created], _one({int(partitions) for _, partitions in created} or {None})


def kafka_access_problems(compose_file, production_resources=None):
    """compose's Kafka setup and production's KafkaUsers are what ops/kafka_access.py makes, and each
    service logs in as itself in both."""
    import kafka_access

    problems = []
    if production_resources is not None:
        problems += _strimzi_user_problems(kafka_access, production_resources)
    setup = compose_file["services"]["kafka-setup"]
    script = ROOT / "ops" / "docker" / "kafka-setup.sh"
    if script.read_text() != kafka_access.setup_script():
        problems.append("ops/docker/kafka-setup.sh is not what ops/kafka_access.py makes: "
                        "run `python ops/kafka_access.py > ops/docker/kafka-setup.sh`")
    if "./ops/docker/kafka-setup.sh:/kafka-setup.sh:ro" not in setup.get("volumes", []):
        problems.append("compose's kafka-setup does not run ops/docker/kafka-setup.sh")
    # The raw text: once nameko has loaded a config, yaml.safe_load itself substitutes ${VAR} (its resolver).
    text = (ROOT / "docker-compose.yml").read_text()
    for component in rpc_access.SERVICE_NAMES:
        environment = compose_file["services"][component]["environment"]
        variable = kafka_access.password_variable(component)
        if environment.get("KAFKA_USERNAME") != component or f"KAFKA_PASSWORD: ${{{variable}:" not in text:
            problems.append(f"{component}: does not log in to Kafka as {component} with {variable}")
        if variable not in setup["environment"]:
            problems.append(f"compose's kafka-setup is not given {variable}")
    return problems


def _one(values):
    """The value all share, or every value found when they differ."""
    return next(iter(values)) if len(values) == 1 else sorted(values)


def _strimzi_user_problems(kafka_access, resources):
    problems = []
    wanted = {user["metadata"]["name"]: user["spec"] for user in yaml.safe_load_all(kafka_access.strimzi_users())}
    found = {name: user["spec"] for name, user in by_kind(resources, "KafkaUser").items()}
    if found != wanted:
        problems.append("deploy/k8s/overlays/production/kafka-users.yaml is not what ops/kafka_access.py makes: "
                        "run `python ops/kafka_access.py --strimzi > deploy/k8s/overlays/production/kafka-users.yaml`")
    pods = shop_pods(resources)
    for component in rpc_access.SERVICE_NAMES:
        container = main_container(pods[component])
        env = {variable["name"]: variable for variable in container.get("env", [])}
        user = kafka_access.kubernetes_user(component)
        password = env.get("KAFKA_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef", {})
        if env.get("KAFKA_USERNAME", {}).get("value") != user or password != {"name": user, "key": "password"}:
            problems.append(f"[production] {component}: does not log in to Kafka as the KafkaUser {user}")
        settings = {key for key in config_map_keys(resources, container)}
        if not {"KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM"} <= settings:
            problems.append(f"[production] {component}: no KAFKA_SECURITY_PROTOCOL/KAFKA_SASL_MECHANISM")
    return problems


def topic_problems(dev_resources, production_resources, compose_file):
    from shop_common.messaging.events import ALL_TOPICS

    wanted = (sorted(ALL_TOPICS), stack.TOPIC_PARTITIONS)
    job = by_kind(dev_resources, "Job")["kafka-topics"]["spec"]["template"]["spec"]["containers"][0]
    kafka_topics = by_kind(production_resources, "KafkaTopic")
    found = {
        "compose": _created_topics((ROOT / "ops" / "docker" / "kafka-setup.sh").read_text()),
        "the dev overlay's job": _loop_topics(job["args"][0]),
        "the production overlay's KafkaTopics": (sorted(kafka_topics), _one(
            {topic["spec"]["partitions"] for topic in kafka_topics.values()})),
    }
    return [f"topics in {where}: {sorted(topics or [])} with {partitions} partitions; the project has "
            f"{wanted[0]} with {wanted[1]}"
            for where, (topics, partitions) in found.items() if (sorted(topics or []), partitions) != wanted]


def image_problems(production_resources):
    problems = []
    for component, pod in shop_pods(production_resources).items():
        version = tomllib.loads((ROOT / component / "pyproject.toml").read_text())["project"]["version"]
        for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            if not container["image"].endswith(f"/{component}:{version}"):
                problems.append(f"{component}: image {container['image']} is not version {version}")
    return problems


def hardening_problems(resources):
    """Every container of the shop as the restricted Pod Security Standard wants it, with resources."""
    problems = []
    for component, pod in shop_pods(resources).items():
        spec = pod["spec"]
        security = spec.get("securityContext", {})
        if not (security.get("runAsNonRoot") and security.get("seccompProfile", {}).get("type") == "RuntimeDefault"):
            problems.append(f"{component}: pod may run as root or without the default seccomp profile")
        for container in spec.get("initContainers", []) + spec["containers"]:
            context = container.get("securityContext", {})
            if context.get("allowPrivilegeEscalation") is not False or not context.get("readOnlyRootFilesystem") \
                    or context.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{component}/{container['name']}: not hardened")
            if container in spec["containers"] and not (
                    container.get("resources", {}).get("requests") and container["resources"].get("limits", {}).get("memory")):
                problems.append(f"{component}/{container['name']}: no resource requests or memory limit")
    return problems


def check():
    """Every problem found, and the resources left unvalidated, over both overlays and compose."""
    rendered = {overlay: render(overlay) for overlay in OVERLAYS}
    compose_file = compose()
    problems, unvalidated = [], []
    for overlay, resources in rendered.items():
        found, skipped = schema_problems(resources)
        problems += [f"[{overlay}] {problem}" for problem in found]
        unvalidated += [f"[{overlay}] {name}" for name in skipped]
        problems += [f"[{overlay}] {problem}" for check in (environment_problems, port_and_probe_problems,
                                                             command_problems)
                     for problem in check(resources, compose_file)]
        problems += [f"[{overlay}] {problem}" for problem in hardening_problems(resources)]
    problems += compose_schema_problems()
    problems += topic_problems(rendered["dev"], rendered["production"], compose_file)
    problems += kafka_access_problems(compose_file, rendered["production"])
    problems += image_problems(rendered["production"])
    return rendered, problems, unvalidated


def main():
    rendered, problems, unvalidated = check()
    for overlay, resources in rendered.items():
        print(f"[deploy-check] {overlay}: {len(resources)} resources rendered")
    print(f"[deploy-check] not validated here (operator CRDs, no schema offline): {len(unvalidated)}: "
          + ", ".join(unvalidated))
    for problem in problems:
        print(f"[deploy-check] PROBLEM {problem}")
    print(f"[deploy-check] {'FAILED' if problems else 'passed'}: Kubernetes {KUBERNETES_VERSION} schemas (strict), "
          "compose specification, consistency of compose, Kubernetes and the local runner")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
