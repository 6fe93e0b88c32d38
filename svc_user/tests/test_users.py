"""User schemas, the user store on real PostgreSQL with real argon2, tokens, and the service."""
import uuid

import jwt
import pytest
from nameko.testing.services import worker_factory

from shop_common.errors import EmailTaken, InvalidCredentials, UserNotFound, ValidationError
from svc_user import schemas
from svc_user.credentials import TokenIssuer
from svc_user.service import UserService
from svc_user.store import UserStore

ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "1", "country": "US"}


@pytest.fixture
def users(transactions_for):
    return UserStore(transactions_for("users"))


def registration(email=None, password="long-enough-1"):
    return schemas.registration({"email": email or f"u-{uuid.uuid4().hex[:8]}@example.com",
                                 "password": password, "name": "U", "address": ADDRESS})


def test_registration_validation():
    with pytest.raises(ValidationError) as error:
        schemas.registration({"email": "x", "password": "short", "name": " ", "address": {}})
    assert {"email", "password", "name", "address.line1", "address.country"} <= set(error.value.details)
    assert schemas.registration({"email": " A@B.CO ", "password": "12345678", "name": "n",
                                 "address": ADDRESS})["email"] == "a@b.co"


def test_register_and_authenticate(users):
    fields = registration()
    user = users.register(fields)
    assert user["role"] == "customer" and user["email"] == fields["email"]
    assert users.authenticate(fields["email"], fields["password"])["id"] == user["id"]
    with pytest.raises(InvalidCredentials):
        users.authenticate(fields["email"], "wrong-password")
    with pytest.raises(InvalidCredentials):
        users.authenticate("nobody@example.com", fields["password"])


def test_email_is_unique(users):
    fields = registration()
    users.register(fields)
    with pytest.raises(EmailTaken):
        users.register(dict(fields))


def test_ensure_admin_creates_then_resets(users):
    email = f"admin-{uuid.uuid4().hex[:6]}@shop.local"
    users.ensure_admin(email, "first-password")
    users.ensure_admin(email, "second-password")
    assert users.authenticate(email, "second-password")["role"] == "admin"
    with pytest.raises(InvalidCredentials):
        users.authenticate(email, "first-password")


def test_profile_update_and_missing_user(users):
    user = users.register(registration())
    updated = users.update_profile(user["id"], schemas.profile_changes({"preferences": {"lang": "en"}}))
    assert updated["preferences"] == {"lang": "en"}
    with pytest.raises(UserNotFound):
        users.get(str(uuid.uuid4()))


def test_tokens_are_signed_and_expire():
    issuer = TokenIssuer("secret-for-tests-0123456789abcdef", ttl_seconds=60)
    token = issuer.issue({"id": "u1", "role": "customer"})
    assert token["token_type"] == "Bearer" and token["expires_in"] == 60
    claims = jwt.decode(token["access_token"], "secret-for-tests-0123456789abcdef", algorithms=["HS256"],
                        issuer="shop")
    assert claims["sub"] == "u1" and claims["exp"] - claims["iat"] == 60
    expired = TokenIssuer("secret-for-tests-0123456789abcdef", ttl_seconds=-1).issue({"id": "u1", "role": "x"})
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(expired["access_token"], "secret-for-tests-0123456789abcdef", algorithms=["HS256"])


def test_login_with_an_impossible_email_fails_like_a_wrong_password():
    service = worker_factory(UserService)
    service.users.authenticate.side_effect = InvalidCredentials("email or password is wrong")
    with pytest.raises(InvalidCredentials):
        service.login("not an email", "whatever")
    service.users.authenticate.assert_called_once_with("", "whatever")
