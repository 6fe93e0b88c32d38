"""Root of the test suite: eventlet first, then shared fixtures.

Nameko's workers, psycogreen and the services' own code assume a
monkey-patched process; patching must happen before anything imports
socket or threading.
"""
import eventlet

eventlet.monkey_patch()

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from shop_common.testing import recreate_database  # noqa: E402

ROOT = Path(__file__).parent
# The databases each service's migrations go into (Inventory shares Product's).
SERVICE_DATABASES = {"svc_user": "users", "svc_product": "products", "svc_inventory": "products",
                     "svc_order": "orders", "svc_payment": "payments"}
ENV_OF = {"users": "USERS_DATABASE_URL", "products": "PRODUCTS_DATABASE_URL",
          "orders": "ORDERS_DATABASE_URL", "payments": "PAYMENTS_DATABASE_URL"}


@pytest.fixture(scope="session")
def unit_databases():
    """Fresh, migrated databases for store tests (no services running on them)."""
    urls = {}
    for short in sorted(set(SERVICE_DATABASES.values())):
        # Another prefix lets two checkouts run their unit tests on one PostgreSQL at once.
        urls[short] = recreate_database(f"{os.environ.get('SHOP_UNIT_DB_PREFIX', 'shop_unit_')}{short}")
    env = dict(os.environ, **{ENV_OF[short]: url for short, url in urls.items()})
    # Side by side (each takes seconds to start), but Inventory after Product: both migrate products.
    for batch in ([service for service in SERVICE_DATABASES if service != "svc_inventory"], ["svc_inventory"]):
        running = [subprocess.Popen([sys.executable, "-m", "alembic", "-c", "alembic.ini", "upgrade", "head"],
                                    cwd=ROOT / service, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                   for service in batch]
        for process in running:
            output, _ = process.communicate(timeout=120)
            assert process.returncode == 0, output.decode()[-2000:]
    return urls


@pytest.fixture(scope="session")
def transactions_for(unit_databases):
    """Transactions on one of the unit databases: transactions_for("orders")."""
    from shop_common.storage.db import Transactions, make_engine

    engines = {}

    def factory(short):
        if short not in engines:
            engines[short] = make_engine(unit_databases[short], pool_size=10)
        return Transactions(engines[short])

    yield factory
    for engine in engines.values():
        engine.dispose()
