"""WSGI entry point: ``gunicorn -c web_gateway/gunicorn.conf.py web_gateway.wsgi:app``."""
import os

from shop_common.telemetry.logs import configure_json_logging
from web_gateway.app import create_app

configure_json_logging(os.environ.get("LOG_LEVEL", "INFO"))
app = create_app()
