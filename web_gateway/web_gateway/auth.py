"""Bearer tokens: verified here with the User service's shared secret, no RPC per request; a token of a
user who logged out everywhere is refused by its version (shop_common.storage.cache.TokenVersions)."""
import logging
import time
from functools import lru_cache, wraps

import jwt
from flask import current_app, g, request
from redis.exceptions import RedisError

from web_gateway.errors import ApiError
from web_gateway.services import gateway

log = logging.getLogger(__name__)

ADMIN = "admin"


def _revoked(claims):
    """An access token older than its user's logout-everywhere. With Redis away the check is skipped (a
    warning): tokens live minutes, and refusing every request would stop the shop."""
    try:
        current = gateway().token_versions.current(claims["sub"])
    except RedisError as exc:
        log.warning("token revocations unknown (Redis away): %r", exc)
        return False
    return current is not None and int(claims.get("ver") or 0) < current


@lru_cache(maxsize=2048)
def _verified(token, secret):
    """The claims of a token whose signature, issuer and expiry pyjwt checked. A shopper's app sends the
    same token for minutes, and each check is a tenth of a millisecond of the gateway's CPU; only
    tokens that passed are kept (an exception is never cached), and the claims are only read."""
    return jwt.decode(token, secret, algorithms=["HS256"], issuer="shop", options={"require": ["exp", "sub", "iss"]})


def _claims():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "Send Authorization: Bearer <access_token>.")
    try:
        claims = _verified(token.strip(), current_app.config["JWT_SECRET"])
    except jwt.ExpiredSignatureError:
        claims = None
    except jwt.InvalidTokenError:
        raise ApiError(401, "unauthorized", "The access token is not valid.")
    if claims is None or int(claims["exp"]) <= time.time():  # a token verified earlier expires all the same
        raise ApiError(401, "unauthorized", "The access token has expired; refresh it or log in again.")
    if _revoked(claims):
        raise ApiError(401, "unauthorized", "The access token was revoked (logged out everywhere); log in again.")
    return claims


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
