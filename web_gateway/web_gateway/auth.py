"""Bearer tokens: verified here with the User service's shared secret, no RPC per request."""
import hashlib
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


class LoginThrottle:
    """At most ``limit`` failed logins per email in ``window`` seconds; then 429 until it passes.

    Counts live in Redis (shared by every gateway process), keyed by a hash
    of the email so no address is stored there.
    """

    def __init__(self, redis_client, limit=10, window_seconds=900):
        self.redis, self.limit, self.window = redis_client, limit, window_seconds

    def _key(self, email):
        return "shop:login-failures:" + hashlib.sha256(str(email).strip().lower().encode()).hexdigest()

    def check(self, email):
        if int(self.redis.get(self._key(email)) or 0) >= self.limit:
            retry_after = max(self.redis.ttl(self._key(email)), 1)
            raise ApiError(429, "rate_limited", "Too many failed logins for this account; try again later.",
                           {"retry_after_seconds": retry_after})

    def failed(self, email):
        pipe = self.redis.pipeline()
        pipe.incr(self._key(email))
        pipe.expire(self._key(email), self.window, nx=True)
        pipe.execute()

    def succeeded(self, email):
        self.redis.delete(self._key(email))
