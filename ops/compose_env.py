"""Secrets for docker compose, made once: ``make compose-env`` writes ``.env`` (read by compose) and
RabbitMQ's users, never committed (both git-ignored, mode 600).

Every service gets its own PostgreSQL role (rights on its own database only), its own RabbitMQ user
on the ``shop`` vhost allowed only its own calls (``ops/rpc_access.py``; an ``operator`` user for the
shell may make any), no guest, its own Kafka (SCRAM) user writing only its own topics
(``ops/kafka_access.py``; Kafka's ``admin`` sets them up), and the shop's secrets; all random, at
least 32 bytes. Run it again
and nothing changes: existing values are kept (``--force`` makes new ones, for a fresh deployment).
"""
import argparse
import json
import os
import secrets
from pathlib import Path

import rpc_access
from stack import rabbitmq_password_variable

ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ROOT / ".env"
RABBITMQ_DEFINITIONS = ROOT / ".run" / "compose" / "rabbitmq-definitions.json"
SERVICES = rpc_access.COMPONENTS
DATABASE_OWNERS = ("svc_user", "svc_product", "svc_inventory", "svc_order", "svc_payment")
PRODUCERS = ("order_service", "inventory_service", "payment_service")


def token():
    return secrets.token_urlsafe(32)  # 43 characters


def wanted():
    values = {
        "SHOP_JWT_SECRET": token(),
        "STRIPE_WEBHOOK_SECRET": "whsec_" + secrets.token_hex(24),
        # localstripe takes any key; production refuses the published sk_test_localstripe.
        "STRIPE_API_KEY": "sk_test_" + secrets.token_hex(24),
        "SHOP_ADMIN_PASSWORD": token(),
        "SHOP_EVENT_KEYS": ",".join(f"{producer}={token()}" for producer in PRODUCERS),
        "POSTGRES_PASSWORD": token(),  # the superuser's: used by the init script only
        "GRAFANA_ADMIN_PASSWORD": token(),
    }
    values.update({f"PG_PASSWORD_{name.upper()}": token() for name in DATABASE_OWNERS})
    values.update({rabbitmq_password_variable(name): token() for name in SERVICES + ("operator",)})
    values["KAFKA_ADMIN_PASSWORD"] = token()
    values.update({f"KAFKA_PASSWORD_{name.upper()}": token() for name in DATABASE_OWNERS})
    return values


def read_env(path):
    found = {}
    if path.exists():
        for line in path.read_text().splitlines():
            name, separator, value = line.partition("=")
            if separator and not name.lstrip().startswith("#"):
                found[name.strip()] = value.strip()
    return found


def rabbitmq_definitions(values):
    """One user per component, allowed only its own calls (ops/rpc_access.py), and the operator's."""
    return rpc_access.definitions("shop", {name: values[rabbitmq_password_variable(name)] for name in SERVICES},
                                  operator=("operator", values["RABBITMQ_PASSWORD_OPERATOR"]))


def write_private(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    os.chmod(path, 0o600)
    path.write_text(text)


# The secrets every component may be given (each Deployment picks its own keys); database passwords
# are separate kubernetes.io/basic-auth Secrets, the form CloudNativePG's managed roles read.
K8S_SHOP_SECRETS = ("SHOP_JWT_SECRET", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_KEY", "SHOP_ADMIN_PASSWORD",
                    "SHOP_EVENT_KEYS")


def write_k8s_secrets(values, directory):
    """The files deploy/k8s/overlays/dev's secretGenerator reads (the same Secrets production names)."""
    directory = Path(directory)
    shop = {name: values[name] for name in K8S_SHOP_SECRETS}
    shop.update({rabbitmq_password_variable(name): values[rabbitmq_password_variable(name)] for name in SERVICES})
    write_private(directory / "shop.env", "".join(f"{name}={value}\n" for name, value in sorted(shop.items())))
    write_private(directory / "postgres-superuser.env", f"username=postgres\npassword={values['POSTGRES_PASSWORD']}\n")
    for owner in DATABASE_OWNERS:
        write_private(directory / f"postgres-{owner.replace('_', '-')}.env",
                      f"username={owner}\npassword={values[f'PG_PASSWORD_{owner.upper()}']}\n")
    write_private(directory / "rabbitmq-definitions.json", json.dumps(rabbitmq_definitions(values), indent=2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="new values for everything")
    parser.add_argument("--k8s", metavar="DIR", help="also write the Kubernetes dev overlay's secret files there")
    args = parser.parse_args()
    values = wanted()
    if not args.force:
        values.update(read_env(ENV_FILE))
    if args.k8s:
        write_k8s_secrets(values, args.k8s)
        print(f"[compose-env] Kubernetes secret files in {args.k8s}")
    write_private(ENV_FILE, "# docker compose secrets, made by `make compose-env` (ops/compose_env.py). Never commit.\n"
                  + "".join(f"{name}={value}\n" for name, value in sorted(values.items())))
    # Read by the rabbitmq container, whose user is not this one: readable, in a git-ignored directory.
    RABBITMQ_DEFINITIONS.parent.mkdir(parents=True, exist_ok=True)
    RABBITMQ_DEFINITIONS.write_text(json.dumps(rabbitmq_definitions(values), indent=2))
    os.chmod(RABBITMQ_DEFINITIONS, 0o644)
    print(f"[compose-env] {ENV_FILE} and {RABBITMQ_DEFINITIONS} ready; admin: admin@shop.local / "
          f"{values['SHOP_ADMIN_PASSWORD']}")


if __name__ == "__main__":
    main()
