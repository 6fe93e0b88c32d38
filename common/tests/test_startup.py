"""Start-up steps run by every instance are safe when two instances run them at once."""
import subprocess
import sys
from pathlib import Path

import psycopg2

from shop_common.testing import recreate_database

ROOT = Path(__file__).resolve().parents[2]


def test_two_instances_migrating_and_seeding_at_once_both_succeed():
    url = recreate_database("shop_unit_startup")
    env = {"PATH": str(Path(sys.executable).parent), "PRODUCTS_DATABASE_URL": url}
    for step in (["-m", "alembic", "-c", "alembic.ini", "upgrade", "head"], ["-m", "svc_product.seed"]):
        both = [subprocess.Popen([sys.executable, *step], cwd=ROOT / "svc_product", env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
        outputs = [process.communicate(timeout=120)[0] for process in both]
        assert [process.returncode for process in both] == [0, 0], outputs
    connection = psycopg2.connect(url.replace("+psycopg2", ""))
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT sku) FROM products")
        products, skus = cursor.fetchone()
    connection.close()
    assert products == skus == 24  # the catalog once, not twice
