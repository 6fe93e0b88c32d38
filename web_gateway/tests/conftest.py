"""The gateway's unit-test fixtures: RPC replaced by recorded answers, a real Redis."""
import time

import jwt
import pytest
import redis

from shop_common.config import load_config
from web_gateway.app import CONFIG_PATH, create_app
from web_gateway.rpc import RpcClients

SECRET = "gateway-test-secret-0123456789abcdef"
REDIS_URL = "redis://127.0.0.1:6379/14"


def app_config(**overrides):
    """config.yaml as shipped (its rate limits too), with RPC in memory and this test's Redis and secret."""
    config = load_config(CONFIG_PATH)
    config.update({"AMQP_URI": "memory://", "REDIS_URL": REDIS_URL, "AUTH": {"jwt_secret": SECRET},
                   "SERVICES": ["order_service"]}, **overrides)
    return config


@pytest.fixture
def calls(monkeypatch):
    """Answers for (service, method); records every call."""
    answers, seen = {}, []

    def fake_call(self, operator, service, method, *args, **kwargs):
        seen.append((service, method, args))
        answer = answers[(service, method)]
        if isinstance(answer, Exception):
            raise answer
        return answer(*args) if callable(answer) else answer

    monkeypatch.setattr(RpcClients, "call_as", fake_call)
    return answers, seen


@pytest.fixture
def client(calls):
    redis.Redis.from_url(REDIS_URL).flushdb()
    app = create_app(app_config())
    return app.test_client()


def token(role="customer", user_id="u1", ttl=60):
    now = int(time.time())
    return jwt.encode({"sub": user_id, "role": role, "iss": "shop", "iat": now, "exp": now + ttl}, SECRET,
                      algorithm="HS256")


def auth(role="customer", **kwargs):
    return {"Authorization": f"Bearer {token(role, **kwargs)}"}
