from pathlib import Path

from shop_common.storage.migrations import run_migrations
from svc_inventory.models import metadata

run_migrations(metadata, "alembic_version_inventory", str(Path(__file__).parents[1] / "config.yaml"))
