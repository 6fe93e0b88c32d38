"""Liveness, readiness and the contract itself (/openapi.json, /docs/)."""
from flask import Blueprint, jsonify
from flask_swagger_ui import get_swaggerui_blueprint

from web_gateway import errors
from web_gateway.openapi import SPEC
from web_gateway.services import SERVICE_NAMES, gateway

blueprint = Blueprint("health", __name__)
blueprint.register_blueprint(get_swaggerui_blueprint("/docs", "/openapi.json", config={
    "app_name": "The shop: REST API", "layout": "BaseLayout", "deepLinking": True}))


@blueprint.get("/health")
def health():
    return {"status": "ok"}


@blueprint.get("/ready")
def ready():
    failing = {}
    try:
        gateway().redis.ping()
    except Exception as exc:
        failing["redis"] = type(exc).__name__
    quick_rpc = gateway().quick_rpc
    for service in gateway().config.get("SERVICES", SERVICE_NAMES.values()):
        try:
            quick_rpc.call(service, "health")
        except Exception as exc:
            quick_rpc.discard()
            failing[service] = type(exc).__name__
    if failing:
        return errors.error_response(503, "unavailable", "Some parts of the shop are not ready.",
                                     {"failing": failing})
    return {"status": "ready"}


@blueprint.get("/openapi.json")
def openapi():
    return jsonify(SPEC)
