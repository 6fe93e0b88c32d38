"""Accounts: registration and login (both throttled: web_gateway.throttling), the caller's profile and notifications."""
from flask import Blueprint, current_app, g, request

from web_gateway.auth import login_required
from web_gateway.edge import json_body
from web_gateway.services import services
from web_gateway.throttling import limiter, limits_of

blueprint = Blueprint("users", __name__)
PROFILE_FIELDS = ("id", "email", "name", "address", "preferences")


@blueprint.post("/auth/register")
@limiter.limit(limits_of("registrations_per_client"))
def register():
    user = services().users.register(json_body())
    return {"id": user["id"], "email": user["email"], "name": user["name"]}, 201


@blueprint.post("/auth/login")
@limiter.limit(limits_of("logins_per_client"))
def login():
    body = json_body()
    email, throttle = body.get("email"), current_app.extensions["login_throttle"]
    throttle.attempt(email)  # counted as a failure until the password proves otherwise
    token = services().users.login(email, body.get("password"))
    throttle.succeeded(email)
    return token


@blueprint.post("/auth/refresh")
@limiter.limit(limits_of("logins_per_client"))
def refresh():
    return services().users.refresh(json_body())


@blueprint.post("/auth/logout")
@login_required
def logout():
    body = json_body() if request.content_length else {}
    return services().users.logout(g.user_id, body)


@blueprint.post("/users/me/password")
@login_required
@limiter.limit(limits_of("logins_per_client"))
def change_password():
    # Guesses of the current password count as failed logins of this account from this client.
    throttle = current_app.extensions["login_throttle"]
    throttle.attempt(f"user:{g.user_id}")
    tokens = services().users.change_password(g.user_id, json_body())
    throttle.succeeded(f"user:{g.user_id}")
    return tokens


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
