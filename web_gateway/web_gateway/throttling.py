"""Who may try how often: Flask-Limiter (Redis storage, shared by every gateway process), moving windows.

Every counter is incremented before the request is judged and the decision
is taken on the new value, atomically in Redis: forty parallel guesses get
exactly the allowance through, never more.

- Logins, per account *and* client address: failures only (a success clears
  them), in tiers that slow a guesser down more and more (5 a minute, 10 in
  15 minutes, 20 an hour, 50 a day) instead of locking the account: the owner,
  trying from another address, is never refused because of a stranger's
  failures (OWASP's authentication guidance).
- Logins per client address overall (credential stuffing across accounts),
  registrations per client address, orders per client address and per
  account (card testing): plain rates.
Every rate is in config.yaml (``LIMITS``).

The client address is ``request.remote_addr``; behind ``TRUSTED_PROXIES``
proxies Werkzeug's ProxyFix takes it from that many ``X-Forwarded-For`` hops,
so clients behind a load balancer are told apart and none can pick its own.
"""
import hashlib
import logging
import time
from functools import partial

from flask import current_app, g, request
from flask_limiter import Limiter
from limits import parse_many
from redis.exceptions import RedisError
from werkzeug.middleware.proxy_fix import ProxyFix

from web_gateway.errors import ApiError

log = logging.getLogger(__name__)

def client_address():
    return request.remote_addr or "unknown"


def account_of_caller():
    return f"user:{g.user_id}"


def limits_of(name):
    """A callable Flask-Limiter reads at request time: the configured rates for ``name``."""
    return lambda: current_app.config["LIMITS"][name]


limiter = Limiter(key_func=client_address, strategy="moving-window", headers_enabled=True,
                  swallow_errors=False, key_prefix="shop-limits")


def install(app, config):
    app.config["LIMITS"] = dict(config["LIMITS"])  # every rate is in config.yaml
    app.config["RATELIMIT_STORAGE_URI"] = config["REDIS_URL"]
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {"socket_timeout": 2}
    proxies = int(config.get("TRUSTED_PROXIES") or 0)
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=0, x_port=0, x_prefix=0)
    limiter.init_app(app)
    _rate_limit_headers_never_fail(app)
    check_limits_in_their_views_only(app, limiter)
    app.extensions["login_throttle"] = LoginThrottle(limiter, app.config["LIMITS"][
        "login_failures_per_account_and_client"])


def _rate_limit_headers_never_fail(app):
    """Flask-Limiter reads Redis again after the view ran, for the X-RateLimit headers. With Redis
    away that turned an accepted order into a 503, and the 503 itself into a 500 (chaos 9). The
    limits are still checked fail-closed before the view; only the headers are left out.
    It also rewrites an existing Retry-After; the response's own is kept."""
    hooks = app.after_request_funcs.setdefault(None, [])
    for index, hook in enumerate(hooks):
        if isinstance(hook, partial) and getattr(hook.func, "__name__", "") == "__inject_headers":
            hooks[index] = partial(_headers_or_none, hook)


def check_limits_in_their_views_only(app, flask_limiter):
    """Flask-Limiter checks a limit that decorates a view in that decorator, and every other kind
    (application, default, blueprint and meta limits) in a hook before every request. The shop has
    none of those, so the hook found nothing to check, at 70 µs of the 450 a cached GET /products
    costs (docs/performance.md, item 14). It is removed only while no such limit is configured."""
    manager = flask_limiter.limit_manager
    # Unknown attributes (another Flask-Limiter) count as limits: the hook then stays.
    if (manager.application_limits or manager.default_limits or getattr(manager, "_blueprint_limits", True)
            or getattr(flask_limiter, "_meta_limits", True)):
        return
    hooks = app.before_request_funcs.setdefault(None, [])
    hooks[:] = [hook for hook in hooks if getattr(hook, "__func__", None) is not Limiter._check_request_limit]


def _headers_or_none(inject, response):
    # A refusal's own Retry-After (the login throttle's) is the one its body names. Flask-Limiter
    # re-derives it through two truncations to whole seconds, which can read one second less.
    own_retry_after = response.headers.get("Retry-After")
    try:
        response = inject(response)
    except RedisError as exc:
        log.warning("rate-limit headers left out, Redis unavailable: %r", exc)
    if own_retry_after is not None:
        response.headers["Retry-After"] = own_retry_after
    return response


class LoginThrottle:
    """Failed logins per (account, client address), in growing tiers; see the module doc."""

    def __init__(self, flask_limiter, tiers):
        self._flask_limiter, self.tiers = flask_limiter, parse_many(tiers)

    def _key(self, email):
        # A hash: no address is stored in Redis. Emails compare as the User service does (trimmed, lower case).
        account = hashlib.sha256(str(email or "").strip().lower().encode()).hexdigest()
        return account, client_address()

    def attempt(self, email):
        """Count this attempt as a failure before it is tried; refuse with 429 once a tier is full."""
        strategy, key = self._flask_limiter.limiter, self._key(email)
        for tier in self.tiers:
            if not strategy.hit(tier, "login-failures", *key):
                reset_at = strategy.get_window_stats(tier, "login-failures", *key).reset_time
                retry_after = max(int(reset_at - time.time()) + 1, 1)
                raise ApiError(429, "rate_limited", "Too many failed logins from here for this account; "
                               "try again later.", {"retry_after_seconds": retry_after},
                               headers={"Retry-After": str(retry_after)})

    def succeeded(self, email):
        strategy, key = self._flask_limiter.limiter, self._key(email)
        for tier in self.tiers:
            strategy.clear(tier, "login-failures", *key)
