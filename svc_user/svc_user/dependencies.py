"""User records, password hashing and token issuing."""
import uuid
from datetime import datetime, timedelta, timezone

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import tpool
from nameko import config
from nameko.extensions import DependencyProvider
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from shop_common.db import StoreProvider
from shop_common.errors import EmailTaken, InvalidCredentials, UserNotFound
from svc_user.models import ADMIN, CUSTOMER, users
from svc_user.schemas import user_view

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


class UserStore:
    def __init__(self, transactions):
        self.transactions = transactions
        self.passwords = Passwords()

    def register(self, fields, role=CUSTOMER):
        values = dict(fields, id=str(uuid.uuid4()), role=role, password_hash=self.passwords.hash(fields["password"]))
        del values["password"]
        try:
            with self.transactions.begin() as session:
                row = session.execute(users.insert().values(**values).returning(users)).one()
        except IntegrityError:
            raise EmailTaken("an account with this email exists", {"email": fields["email"]})
        return user_view(row)

    def authenticate(self, email, password):
        with self.transactions.begin() as session:
            row = session.execute(select(users).where(users.c.email == email)).first()
        if not self.passwords.verify(row.password_hash if row else None, password):
            raise InvalidCredentials("email or password is wrong")
        if self.passwords.needs_rehash(row.password_hash):
            with self.transactions.begin() as session:
                session.execute(update(users).where(users.c.id == row.id)
                                .values(password_hash=self.passwords.hash(password)))
        return user_view(row)

    def get(self, user_id):
        with self.transactions.begin() as session:
            row = session.execute(select(users).where(users.c.id == user_id)).first()
        if row is None:
            raise UserNotFound("user not found", {"user_id": user_id})
        return user_view(row)

    def get_by_email(self, email):
        with self.transactions.begin() as session:
            row = session.execute(select(users).where(users.c.email == email)).first()
        if row is None:
            raise UserNotFound("user not found", {"email": email})
        return user_view(row)

    def update_profile(self, user_id, changes):
        with self.transactions.begin() as session:
            row = session.execute(
                update(users).where(users.c.id == user_id).values(**changes, updated_at=func.now()).returning(users)
            ).first()
        if row is None:
            raise UserNotFound("user not found", {"user_id": user_id})
        return user_view(row)

    def ensure_admin(self, email, password):
        """Create the admin account, or reset its password and role to the configured ones."""
        values = {
            "id": str(uuid.uuid4()), "email": email, "password_hash": self.passwords.hash(password),
            "name": "Shop administrator", "role": ADMIN,
            "address": {"line1": "-", "city": "-", "postal_code": "-", "country": "-"},
        }
        with self.transactions.begin() as session:
            session.execute(
                insert(users).values(**values).on_conflict_do_update(
                    index_elements=["email"],
                    set_={"password_hash": values["password_hash"], "role": ADMIN, "updated_at": func.now()},
                )
            )


class Users(StoreProvider):
    store_class = UserStore

    def setup(self):
        super().setup()
        # In setup, not start: entrypoints start concurrently with dependencies, and a
        # login must never reach the service before the admin account exists.
        auth = config.get("AUTH") or {}
        self.store_class(self.transactions).ensure_admin(auth["admin_email"].lower(), str(auth["admin_password"]))


class TokenIssuer:
    def __init__(self, secret, ttl_seconds):
        self.secret = secret
        self.ttl_seconds = ttl_seconds

    def issue(self, user):
        now = datetime.now(timezone.utc)
        claims = {"sub": user["id"], "role": user["role"], "iss": TOKEN_ISSUER, "iat": now,
                  "exp": now + timedelta(seconds=self.ttl_seconds), "jti": uuid.uuid4().hex}
        token = jwt.encode(claims, self.secret, algorithm="HS256")
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.ttl_seconds}


class Tokens(DependencyProvider):
    def setup(self):
        auth = config.get("AUTH") or {}
        self.issuer = TokenIssuer(str(auth["jwt_secret"]), int(auth.get("token_ttl_seconds", 3600)))

    def get_dependency(self, worker_ctx):
        return self.issuer
