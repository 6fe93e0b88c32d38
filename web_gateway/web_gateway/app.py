"""The gateway's Flask app: the routes of the public contract (docs/api.md, web_gateway.routes)."""
import os
from pathlib import Path

from flask import Flask

from shop_common.config import load_config
from shop_common.production import check_config
from web_gateway import edge, errors, observability, throttling
from web_gateway.routes import BLUEPRINTS
from web_gateway.services import Gateway

CONFIG_PATH = Path(__file__).parents[1] / "config.yaml"


def create_app(config=None):
    config = config or load_config(os.environ.get("SHOP_GATEWAY_CONFIG", CONFIG_PATH))
    check_config(config)
    app = Flask(__name__)
    app.config["JWT_SECRET"] = str(config["AUTH"]["jwt_secret"])
    app.config["MAX_CONTENT_LENGTH"] = edge.MAX_BODY_BYTES
    app.json.sort_keys = False
    app.extensions["gateway"] = Gateway.from_config(config)
    errors.register(app)
    observability.instrument(app)
    edge.install(app)
    throttling.install(app, config)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app
