"""Load the demo catalog: ``python -m svc_product.seed [--config PATH]``.

Idempotent: products whose SKU exists are left untouched.
"""
import argparse
import json
from importlib.resources import files
from pathlib import Path

from shop_common.config import load_config
from shop_common.storage.db import Transactions, make_engine
from svc_product.store import CatalogStore


def demo_catalog():
    return json.loads(files("svc_product").joinpath("data/catalog.json").read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=str(Path(__file__).parents[1] / "config.yaml"))
    args = parser.parse_args()
    engine = make_engine(load_config(args.config)["DATABASE_URL"], pool_size=1)
    added = CatalogStore(Transactions(engine)).seed(demo_catalog())
    engine.dispose()
    print(f"catalog seeded: {added} new products")


if __name__ == "__main__":
    main()
