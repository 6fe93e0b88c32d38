"""The users store: accounts and sessions (refresh tokens)."""
import hashlib
import secrets
import uuid
from datetime import datetime, timedelta, timezone

from nameko import config
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from shop_common.errors import EmailTaken, InvalidCredentials, InvalidRefreshToken, UserNotFound
from shop_common.storage.db import StoreProvider
from svc_user.credentials import Passwords
from svc_user.models import ADMIN, CUSTOMER, refresh_tokens, users
from svc_user.schemas import user_view


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
        with self.transactions.one_statement() as statement:
            row = statement.execute(select(users).where(users.c.email == email)).first()
        if not self.passwords.verify(row.password_hash if row else None, password):
            raise InvalidCredentials("email or password is wrong")
        if self.passwords.needs_rehash(row.password_hash):
            with self.transactions.one_statement() as statement:
                statement.execute(update(users).where(users.c.id == row.id)
                                  .values(password_hash=self.passwords.hash(password)))
        return user_view(row)

    def change_password(self, user_id, current_password, new_password):
        """The new password, once the current one is proven. Returns the user as now stored."""
        with self.transactions.begin() as session:
            row = session.execute(select(users).where(users.c.id == user_id)).first()
        if row is None:
            raise UserNotFound("user not found", {"user_id": user_id})
        if not self.passwords.verify(row.password_hash, current_password):
            raise InvalidCredentials("the current password is wrong")
        with self.transactions.begin() as session:
            row = session.execute(update(users).where(users.c.id == user_id)
                                  .values(password_hash=self.passwords.hash(new_password), updated_at=func.now())
                                  .returning(users)).one()
        return user_view(row)

    def get(self, user_id):
        with self.transactions.one_statement() as statement:
            row = statement.execute(select(users).where(users.c.id == user_id)).first()
        if row is None:
            raise UserNotFound("user not found", {"user_id": user_id})
        return user_view(row)

    def get_by_email(self, email):
        with self.transactions.one_statement() as statement:
            row = statement.execute(select(users).where(users.c.email == email)).first()
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


def _digest(refresh_token):
    return hashlib.sha256(refresh_token.encode()).hexdigest()


class SessionStore:
    """Refresh tokens: a family per login, each token used once (see models.refresh_tokens)."""

    def __init__(self, transactions, ttl_seconds):
        self.transactions, self.ttl_seconds = transactions, ttl_seconds

    def _add(self, session, user_id, family_id):
        token = secrets.token_urlsafe(32)
        session.execute(refresh_tokens.insert().values(
            token_hash=_digest(token), user_id=user_id, family_id=family_id,
            expires_at=datetime.now(timezone.utc) + timedelta(seconds=self.ttl_seconds)))
        return token

    def start(self, user):
        """A new family for a login: its first refresh token."""
        with self.transactions.begin() as session:
            return self._add(session, user["id"], str(uuid.uuid4()))

    def rotate(self, refresh_token):
        """Use this token up: (the user, the family's next token). A token used before revokes its family."""
        with self.transactions.begin() as session:
            row = session.execute(select(refresh_tokens).where(refresh_tokens.c.token_hash == _digest(refresh_token))
                                  .with_for_update()).first()
            if row is None or row.revoked_at is not None or row.expires_at <= datetime.now(timezone.utc):
                raise InvalidRefreshToken("the refresh token is not valid; log in again")
            if row.used_at is not None:
                # Someone holds a copy of a token already used: neither copy may go on.
                session.execute(update(refresh_tokens).where(refresh_tokens.c.family_id == row.family_id,
                                                             refresh_tokens.c.revoked_at.is_(None))
                                .values(revoked_at=func.now()))
                reused = True
            else:
                reused = False
                session.execute(update(refresh_tokens).where(refresh_tokens.c.token_hash == row.token_hash)
                                .values(used_at=func.now()))
                user = session.execute(select(users).where(users.c.id == row.user_id)).one()
                return user_view(user), self._add(session, row.user_id, row.family_id)
        if reused:  # after the commit: the revocation must stay
            raise InvalidRefreshToken("the refresh token was used before; every session of it is ended")

    def end(self, user_id, refresh_token=None, everywhere=False):
        """Log out: this token's family, or every session of the user (and every access token: the
        version goes up). Returns the user's token version (None for an unknown user)."""
        with self.transactions.begin() as session:
            revoke = update(refresh_tokens).where(refresh_tokens.c.user_id == user_id,
                                                  refresh_tokens.c.revoked_at.is_(None))
            if everywhere:
                session.execute(revoke.values(revoked_at=func.now()))
                return session.execute(update(users).where(users.c.id == user_id)
                                       .values(token_version=users.c.token_version + 1)
                                       .returning(users.c.token_version)).scalar()
            if refresh_token:
                family = select(refresh_tokens.c.family_id).where(
                    refresh_tokens.c.token_hash == _digest(refresh_token), refresh_tokens.c.user_id == user_id)
                session.execute(revoke.where(refresh_tokens.c.family_id.in_(family.scalar_subquery()))
                                .values(revoked_at=func.now()))
            return session.execute(select(users.c.token_version).where(users.c.id == user_id)).scalar()


class Sessions(StoreProvider):
    store_class = SessionStore

    def get_dependency(self, worker_ctx):
        auth = config.get("AUTH") or {}
        return SessionStore(self.transactions, int(auth.get("refresh_ttl_seconds", 30 * 86400)))
