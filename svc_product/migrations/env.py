from pathlib import Path

from shop_common.storage.migrations import run_migrations
from svc_product.models import metadata

run_migrations(metadata, "alembic_version_product", str(Path(__file__).parents[1] / "config.yaml"))
