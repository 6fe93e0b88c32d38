"""WSGI entry point: ``gunicorn -c web_gateway/gunicorn.conf.py web_gateway.wsgi:app``."""
import logging

from web_gateway.app import create_app

logging.basicConfig(level=logging.INFO)
app = create_app()
