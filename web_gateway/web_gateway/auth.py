"""Bearer tokens: verified here with the User service's shared secret, no RPC per request."""
from functools import wraps

import jwt
from flask import current_app, g, request

from web_gateway.errors import ApiError

ADMIN = "admin"


def _claims():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "Send Authorization: Bearer <access_token>.")
    try:
        return jwt.decode(token.strip(), current_app.config["JWT_SECRET"], algorithms=["HS256"], issuer="shop",
                          options={"require": ["exp", "sub", "iss"]})
    except jwt.ExpiredSignatureError:
        raise ApiError(401, "unauthorized", "The access token has expired; log in again.")
    except jwt.InvalidTokenError:
        raise ApiError(401, "unauthorized", "The access token is not valid.")


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        claims = _claims()
        g.user_id, g.role = claims["sub"], claims.get("role")
        return view(*args, **kwargs)
    return wrapper


def admin_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        claims = _claims()
        if claims.get("role") != ADMIN:
            raise ApiError(403, "forbidden", "Only an administrator may do this.")
        g.user_id, g.role = claims["sub"], claims.get("role")
        return view(*args, **kwargs)
    return wrapper
