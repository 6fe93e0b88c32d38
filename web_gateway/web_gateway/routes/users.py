"""Accounts: registration, login (throttled per email), the caller's profile and notifications."""
from flask import Blueprint, g

from shop_common.errors import InvalidCredentials
from web_gateway.auth import login_required
from web_gateway.edge import json_body
from web_gateway.services import gateway, services

blueprint = Blueprint("users", __name__)
PROFILE_FIELDS = ("id", "email", "name", "address", "preferences")


@blueprint.post("/auth/register")
def register():
    user = services().users.register(json_body())
    return {"id": user["id"], "email": user["email"], "name": user["name"]}, 201


@blueprint.post("/auth/login")
def login():
    body = json_body()
    email, throttle = body.get("email"), gateway().login_throttle
    throttle.check(email)
    try:
        token = services().users.login(email, body.get("password"))
    except InvalidCredentials:
        throttle.failed(email)
        raise
    throttle.succeeded(email)
    return token


@blueprint.get("/users/me")
@login_required
def me():
    user = services().users.get_user(g.user_id)
    return {key: user[key] for key in PROFILE_FIELDS}


@blueprint.patch("/users/me")
@login_required
def update_me():
    user = services().users.update_user(g.user_id, json_body())
    return {key: user[key] for key in PROFILE_FIELDS}


@blueprint.get("/users/me/notifications")
@login_required
def notifications():
    return {"items": services().orders.list_notifications(g.user_id)}
