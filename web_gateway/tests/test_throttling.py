"""Throttling with the shipped rates (config.yaml) on a real Redis: guessers slowed, owners never locked out."""
from concurrent.futures import ThreadPoolExecutor

from shop_common import errors
from web_gateway.app import create_app
from web_gateway.tests.conftest import app_config, auth

WRONG = errors.InvalidCredentials("email or password is wrong")
TOKEN = {"access_token": "t", "token_type": "Bearer", "expires_in": 60}
ORDER = {"items": [{"product_id": "p1", "quantity": 1}], "payment_method": "pm_card_visa"}


def from_client(client, address):
    client.environ_base["REMOTE_ADDR"] = address
    return client


def login(client, email, password="guess"):
    return client.post("/auth/login", json={"email": email, "password": password})


def test_failed_logins_slow_that_client_down_for_that_account_only(client, calls):
    answers, seen = calls
    answers[("user_service", "login")] = WRONG
    attacker = from_client(client, "198.51.100.9")
    for _ in range(5):
        assert login(attacker, "Ann@Example.com").status_code == 401
    blocked = login(attacker, " ann@example.com ")  # the same account, however it is spelled
    assert blocked.status_code == 429 and blocked.json["error"]["code"] == "rate_limited"
    assert 0 < int(blocked.headers["Retry-After"]) <= 61
    assert blocked.json["error"]["details"]["retry_after_seconds"] == int(blocked.headers["Retry-After"])
    assert len(seen) == 5  # the sixth guess never reached the User service
    assert login(attacker, "bob@example.com").status_code == 401  # other accounts: their own allowance
    answers[("user_service", "login")] = TOKEN
    owner = from_client(create_app(app_config()).test_client(), "203.0.113.20")
    assert login(owner, "ann@example.com", "the right one").status_code == 200  # never locked out by a stranger


def test_a_refusal_by_a_long_tier_says_the_same_wait_in_its_header_and_its_body(calls):
    """Flask-Limiter rewrites Retry-After from the login view's own (one-minute) limit and truncates it
    twice; a refusal by an hour's tier must still say one figure, the hour's, in both places."""
    answers, _ = calls
    answers[("user_service", "login")] = WRONG
    limits = dict(app_config()["LIMITS"], login_failures_per_account_and_client="1/hour")
    guesser = from_client(create_app(app_config(LIMITS=limits)).test_client(), "198.51.100.31")
    assert login(guesser, "gil@example.com").status_code == 401
    blocked = login(guesser, "gil@example.com")
    assert blocked.status_code == 429
    assert 3590 < blocked.json["error"]["details"]["retry_after_seconds"] == int(blocked.headers["Retry-After"])


def test_a_success_clears_the_failures(client, calls):
    answers, _ = calls
    answers[("user_service", "login")] = WRONG
    for _ in range(4):
        login(client, "cy@example.com")
    answers[("user_service", "login")] = TOKEN
    assert login(client, "cy@example.com", "ok").status_code == 200
    answers[("user_service", "login")] = WRONG
    assert [login(client, "cy@example.com").status_code for _ in range(6)] == [401] * 5 + [429]


def test_parallel_guesses_get_exactly_the_allowance_through(client, calls):
    """Counted before the password is checked, atomically: 40 at once, 5 checks."""
    answers, seen = calls
    answers[("user_service", "login")] = WRONG
    app = create_app(app_config())

    def guess(_):
        return login(from_client(app.test_client(), "198.51.100.40"), "dee@example.com").status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(guess, range(40)))
    assert sorted(statuses) == [401] * 5 + [429] * 35
    assert len(seen) == 5


def test_the_client_address_comes_from_x_forwarded_for_only_through_trusted_proxies(calls):
    answers, _ = calls
    answers[("user_service", "login")] = WRONG
    direct = from_client(create_app(app_config()).test_client(), "10.0.0.2")
    for n in range(6):  # a client cannot pick a new address per guess
        status = direct.post("/auth/login", json={"email": "eve@example.com", "password": "x"},
                             headers={"X-Forwarded-For": f"192.0.2.{n}"}).status_code
    assert status == 429
    behind_proxy = from_client(create_app(app_config(TRUSTED_PROXIES=1)).test_client(), "10.0.0.1")
    statuses = [behind_proxy.post("/auth/login", json={"email": "fay@example.com", "password": "x"},
                                  headers={"X-Forwarded-For": f"192.0.2.{n}"}).status_code for n in range(6)]
    assert statuses == [401] * 6  # six clients behind one load balancer, one failure each


def test_registrations_are_limited_per_client(client, calls):
    answers, seen = calls
    answers[("user_service", "register")] = {"id": "u", "email": "x@example.com", "name": "X"}
    body = {"email": "x@example.com", "password": "long enough password", "name": "X",
            "address": {"line1": "1", "city": "c", "postal_code": "p", "country": "US"}}
    statuses = [from_client(client, "198.51.100.7").post("/auth/register", json=body).status_code for _ in range(11)]
    assert statuses == [201] * 10 + [429]
    refused = from_client(client, "198.51.100.7").post("/auth/register", json=body)
    assert refused.json["error"]["code"] == "rate_limited" and "Retry-After" in refused.headers
    assert from_client(client, "198.51.100.8").post("/auth/register", json=body).status_code == 201
    assert len(seen) == 11


def test_orders_are_limited_per_account_from_any_address(client, calls):
    answers, seen = calls
    answers[("order_service", "place_order")] = {"order": {"id": "o", "status": "PENDING"}, "created": True}
    statuses = [from_client(client, f"198.51.100.{n}").post("/orders", json=ORDER, headers=auth(user_id="u1"))
                .status_code for n in range(21)]
    assert statuses == [202] * 20 + [429]
    assert from_client(client, "198.51.100.99").post("/orders", json=ORDER, headers=auth(user_id="u2")) \
        .status_code == 202


def test_orders_are_limited_per_client_across_accounts(client, calls):
    answers, _ = calls
    answers[("order_service", "place_order")] = {"order": {"id": "o", "status": "PENDING"}, "created": True}
    card_tester = from_client(client, "198.51.100.66")
    statuses = [card_tester.post("/orders", json=ORDER, headers=auth(user_id=f"u{n}")).status_code for n in range(61)]
    assert statuses == [202] * 60 + [429]


def test_an_accepted_order_stays_accepted_when_redis_fails_after_the_limit_check(client, calls, monkeypatch):
    """The limit is checked before the view (fail-closed); the headers after it need Redis again, and
    with Redis away they are left out instead of turning the 202 into a 503 or a 500 (chaos 9)."""
    import redis
    from limits.storage import RedisStorage

    answers, _ = calls
    answers[("order_service", "place_order")] = {"order": {"id": "o", "status": "PENDING"}, "created": True}
    checked = client.post("/orders", json=ORDER, headers=auth(user_id="u7"))
    assert checked.status_code == 202 and "X-RateLimit-Remaining" in checked.headers

    def away(*args, **kwargs):
        raise redis.exceptions.TimeoutError("Timeout reading from socket")

    monkeypatch.setattr(RedisStorage, "get_moving_window", away)  # what the headers read
    accepted = client.post("/orders", json=ORDER, headers=auth(user_id="u7"))
    assert accepted.status_code == 202, accepted.json
    assert "X-RateLimit-Remaining" not in accepted.headers


def is_limit_check(hook):
    from flask_limiter import Limiter

    return getattr(hook, "__func__", None) is Limiter._check_request_limit


def test_requests_without_a_limit_skip_flask_limiters_check_while_every_limit_decorates_a_view():
    app = create_app(app_config())
    assert not any(is_limit_check(hook) for hook in app.before_request_funcs[None])


def test_an_application_wide_limit_keeps_the_check_before_every_request():
    from flask import Flask
    from flask_limiter import Limiter

    from web_gateway.throttling import check_limits_in_their_views_only

    app = Flask(__name__)
    app_wide = Limiter(key_func=lambda: "client", application_limits=["2/minute"], storage_uri="memory://")
    app_wide.init_app(app)
    app.get("/page")(lambda: "page")
    check_limits_in_their_views_only(app, app_wide)
    assert any(is_limit_check(hook) for hook in app.before_request_funcs[None])
    assert [app.test_client().get("/page").status_code for _ in range(3)] == [200, 200, 429]
