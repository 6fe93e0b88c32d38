"""Sessions on real PostgreSQL: refresh tokens used once, a reused one ends its family, logout everywhere."""
import uuid

import jwt
import pytest

from shop_common.errors import InvalidRefreshToken
from svc_user import schemas
from svc_user.credentials import TokenIssuer
from svc_user.store import SessionStore, UserStore

ADDRESS = {"line1": "1 Main St", "city": "Springfield", "postal_code": "1", "country": "US"}


@pytest.fixture
def stores(transactions_for):
    transactions = transactions_for("users")
    return UserStore(transactions), SessionStore(transactions, ttl_seconds=3600)


@pytest.fixture
def user(stores):
    users, _ = stores
    return users.register(schemas.registration({"email": f"s-{uuid.uuid4().hex[:8]}@example.com",
                                                "password": "long-enough-1", "name": "S", "address": ADDRESS}))


def test_a_refresh_token_is_used_once_and_gives_the_next(stores, user):
    _, sessions = stores
    first = sessions.start(user)
    refreshed_user, second = sessions.rotate(first)
    assert refreshed_user["id"] == user["id"] and second != first
    _, third = sessions.rotate(second)
    assert third not in (first, second)


def test_a_reused_token_ends_its_whole_family_but_not_other_sessions(stores, user):
    _, sessions = stores
    stolen = sessions.start(user)
    other_device = sessions.start(user)
    _, next_token = sessions.rotate(stolen)  # the owner refreshes
    with pytest.raises(InvalidRefreshToken, match="used before"):
        sessions.rotate(stolen)  # the thief replays the copy
    with pytest.raises(InvalidRefreshToken):
        sessions.rotate(next_token)  # and the owner's next one is gone with it
    assert sessions.rotate(other_device)[1]  # another login is another family


def test_unknown_and_expired_tokens_are_refused(stores, user, transactions_for):
    _, sessions = stores
    with pytest.raises(InvalidRefreshToken):
        sessions.rotate("not-a-token")
    expired = SessionStore(transactions_for("users"), ttl_seconds=-1).start(user)
    with pytest.raises(InvalidRefreshToken):
        sessions.rotate(expired)


def test_logout_ends_one_session_and_everywhere_ends_all_and_bumps_the_version(stores, user):
    users, sessions = stores
    this, other = sessions.start(user), sessions.start(user)
    assert sessions.end(user["id"], this) == 1
    with pytest.raises(InvalidRefreshToken):
        sessions.rotate(this)
    _, other = sessions.rotate(other)
    assert sessions.end(user["id"], everywhere=True) == 2
    with pytest.raises(InvalidRefreshToken):
        sessions.rotate(other)
    assert users.get(user["id"])["token_version"] == 2


def test_access_tokens_carry_the_user_s_token_version_and_the_refresh_token_when_given():
    issued = TokenIssuer("secret-for-tests-0123456789abcdef", 60).issue(
        {"id": "u1", "role": "customer", "token_version": 7}, "refresh-me", 3600)
    claims = jwt.decode(issued["access_token"], "secret-for-tests-0123456789abcdef", algorithms=["HS256"])
    assert claims["ver"] == 7
    assert issued["refresh_token"] == "refresh-me" and issued["refresh_expires_in"] == 3600


def test_a_password_is_changed_only_with_the_current_one(stores, user):
    from shop_common.errors import InvalidCredentials

    users, _ = stores
    with pytest.raises(InvalidCredentials):
        users.change_password(user["id"], "not-the-password", "another-long-one")
    users.change_password(user["id"], "long-enough-1", "another-long-one")
    assert users.authenticate(user["email"], "another-long-one")["id"] == user["id"]
    with pytest.raises(InvalidCredentials):
        users.authenticate(user["email"], "long-enough-1")
