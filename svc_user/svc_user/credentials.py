"""Passwords (argon2id) and access tokens (JWT): what proves who a user is."""
import uuid
from datetime import datetime, timedelta, timezone

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import tpool
from nameko import config
from nameko.extensions import DependencyProvider

TOKEN_ISSUER = "shop"


class Passwords:
    """argon2id hashing, run in an OS thread: it is CPU work that would stall the eventlet hub."""

    hasher = PasswordHasher()
    # Verified against when the email is unknown, so both failures cost the same time.
    _decoy = hasher.hash("decoy-password-for-timing")

    def hash(self, password):
        return tpool.execute(self.hasher.hash, password)

    def verify(self, password_hash, password):
        try:
            return tpool.execute(self.hasher.verify, password_hash or self._decoy, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash):
        return self.hasher.check_needs_rehash(password_hash)


class TokenIssuer:
    def __init__(self, secret, ttl_seconds):
        self.secret = secret
        self.ttl_seconds = ttl_seconds

    def issue(self, user, refresh_token=None, refresh_ttl_seconds=None):
        now = datetime.now(timezone.utc)
        claims = {"sub": user["id"], "role": user["role"], "iss": TOKEN_ISSUER, "iat": now,
                  "exp": now + timedelta(seconds=self.ttl_seconds), "jti": uuid.uuid4().hex,
                  "ver": user.get("token_version", 1)}
        token = jwt.encode(claims, self.secret, algorithm="HS256")
        issued = {"access_token": token, "token_type": "Bearer", "expires_in": self.ttl_seconds}
        if refresh_token:
            issued.update(refresh_token=refresh_token, refresh_expires_in=refresh_ttl_seconds)
        return issued


class Tokens(DependencyProvider):
    def setup(self):
        auth = config.get("AUTH") or {}
        self.issuer = TokenIssuer(str(auth["jwt_secret"]), int(auth.get("token_ttl_seconds", 900)))

    def get_dependency(self, worker_ctx):
        return self.issuer
