"""Who may do what on Kafka: each service's own SASL/SCRAM user, writing only the topics it owns.

Derived, never listed by hand: a topic's writer is its owner in
``shop_common.messaging.event_signing.TOPIC_OWNERS`` (the same table consumers check signatures
against); a service reads the topics its ``kafka_event`` handlers subscribe to, in its own consumer
group (its Nameko service name), and writes dead letters; every service reads the dead-letter topic
(the operator's ``dead_letters()`` call). A dead letter is replayed by its topic's owner
(``replay_dead_letters``), so no service needs to write another's topic.

``python ops/kafka_access.py`` prints the setup script compose runs (``ops/docker/kafka-setup.sh``:
topics, users, ACLs; passwords from the environment, never in the script); ``--strimzi`` prints the
production overlay's KafkaUser resources (``deploy/k8s/overlays/production/kafka-users.yaml``: Strimzi's
User Operator makes each user's password Secret). ``make deploy-check`` holds both files to this table. Tansu, the local broker, cannot require SASL and keep
users at once (``--authentication`` refuses the very request that creates one), so locally there are
no users; compose's Apache Kafka enforces this table.
"""
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from rpc_access import SERVICE_NAMES  # noqa: E402
from stack import SERVICES, TOPIC_PARTITIONS  # noqa: E402

SCRAM_MECHANISM = "SCRAM-SHA-512"


def subscriptions(component):
    """The topics a component's ``kafka_event`` handlers read."""
    from shop_common.messaging.kafka import KafkaEventHandler

    service_class = getattr(importlib.import_module(f"{component}.service"), SERVICES[component])
    return sorted({entrypoint.topic for name in dir(service_class)
                   for entrypoint in getattr(getattr(service_class, name), "nameko_entrypoints", ())
                   if isinstance(entrypoint, KafkaEventHandler)})


def acls(component):
    """(operation, resource type, resource name) this component's user is allowed."""
    from shop_common.messaging.event_signing import TOPIC_OWNERS
    from shop_common.messaging.events import DEAD_LETTER_TOPIC

    service = SERVICE_NAMES[component]
    allowed = {("Read", "topic", DEAD_LETTER_TOPIC), ("Describe", "topic", DEAD_LETTER_TOPIC)}
    for topic, owner in TOPIC_OWNERS.items():
        if owner == service:
            allowed |= {("Write", "topic", topic), ("Describe", "topic", topic)}
    read = subscriptions(component)
    for topic in read:
        allowed |= {("Read", "topic", topic), ("Describe", "topic", topic)}
    if read:
        allowed |= {("Read", "group", service), ("Write", "topic", DEAD_LETTER_TOPIC)}
    return sorted(allowed)


def kubernetes_user(component):
    """The user's name in Kubernetes: a KafkaUser is named like the Deployment (no underscores there)."""
    return component.replace("_", "-")


def strimzi_users():
    """One KafkaUser per service: SCRAM-SHA-512, and this table's ACLs (Strimzi's simple authorization)."""
    import yaml

    documents = []
    for component in SERVICE_NAMES:
        by_resource = {}
        for operation, resource, name in acls(component):
            by_resource.setdefault((resource, name), []).append(operation)
        documents.append({
            "apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaUser",
            "metadata": {"name": kubernetes_user(component), "labels": {"strimzi.io/cluster": "kafka"}},
            "spec": {"authentication": {"type": "scram-sha-512"}, "authorization": {"type": "simple", "acls": [
                {"resource": {"type": resource, "name": name, "patternType": "literal"}, "operations": operations}
                for (resource, name), operations in by_resource.items()]}},
        })
    header = ("# Made by `python ops/kafka_access.py --strimzi` (make deploy-check holds it to ops/kafka_access.py):\n"
              "# each service's Kafka user and ACLs. Strimzi's User Operator writes its password to a Secret\n"
              "# of the same name, which the service's Deployment reads (kustomization.yaml).\n")
    return header + yaml.safe_dump_all(documents, sort_keys=False, width=120)


def password_variable(component):
    return f"KAFKA_PASSWORD_{component.upper()}"


def setup_script():
    """The shell script compose's kafka-setup step runs with the Kafka image's tools."""
    from shop_common.messaging.events import ALL_TOPICS

    tools = "/opt/kafka/bin"
    admin = "--bootstrap-server kafka:9092 --command-config /tmp/admin.properties"
    lines = [
        "#!/bin/sh",
        "# Made by `python ops/kafka_access.py > ops/docker/kafka-setup.sh` (tests/test_compose.py checks it",
        "# is current): the shop's topics, one SCRAM user per service and the ACLs of ops/kafka_access.py.",
        "# Passwords come from the environment (.env, made by `make compose-env`). Safe to run again.",
        "set -eu",
        "cat > /tmp/admin.properties <<EOF",
        "security.protocol=SASL_PLAINTEXT",
        "sasl.mechanism=PLAIN",
        'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required '
        'username="admin" password="$KAFKA_ADMIN_PASSWORD";',
        "EOF",
    ]
    for topic in ALL_TOPICS:
        lines.append(f"{tools}/kafka-topics.sh {admin} --create --if-not-exists --topic {topic} "
                     f"--partitions {TOPIC_PARTITIONS} --replication-factor 1")
    for component in SERVICE_NAMES:
        lines.append(f"{tools}/kafka-configs.sh {admin} --alter --entity-type users --entity-name {component} "
                     f'--add-config "{SCRAM_MECHANISM}=[iterations=8192,password=${password_variable(component)}]"')
        by_resource = {}
        for operation, resource, name in acls(component):
            by_resource.setdefault((resource, name), []).append(operation)
        for (resource, name), operations in by_resource.items():  # one JVM start per resource
            lines.append(f"{tools}/kafka-acls.sh {admin} --add --allow-principal User:{component} "
                         + "".join(f"--operation {operation} " for operation in operations) + f"--{resource} {name}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(strimzi_users() if sys.argv[1:] == ["--strimzi"] else setup_script())
