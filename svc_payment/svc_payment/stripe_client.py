"""Stripe, as the Payment service needs it: intents, refunds and webhook payloads, through the ``stripe`` SDK.

Every call carries an idempotency key derived from the order, and every step
first looks at what Stripe already has, so a retried step never charges or
refunds twice (localstripe ignores idempotency keys, real Stripe honours
them; we rely on neither alone). What comes back is a plain snapshot
(``snapshot``, ``refund_view``) that the store records. The fault flags
``payment_provider_error_rate`` (the call never reaches Stripe) and
``payment_provider_timeout_rate`` (Stripe acts, the answer is lost) act on
every call.
"""
import logging

import requests
import stripe
from nameko import config
from nameko.constants import DEFAULT_MAX_WORKERS, MAX_WORKERS_CONFIG_KEY
from nameko.extensions import DependencyProvider
from requests.adapters import HTTPAdapter

from shop_common import faults
from shop_common.errors import PaymentProviderUnavailable
from svc_payment.service_name import NAME

log = logging.getLogger(__name__)

UNAVAILABLE = (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError, stripe.AuthenticationError)


def snapshot(intent, failure_code=None, failure_message=None):
    """What the shop keeps of a PaymentIntent."""
    error = intent.last_payment_error.to_dict() if getattr(intent, "last_payment_error", None) else {}
    next_action = intent.next_action.to_dict() if getattr(intent, "next_action", None) else None
    view = {
        "intent_id": intent.id,
        "order_id": _metadata(intent).get("order_id"),
        "status": intent.status,
        "amount_cents": intent.amount,
        "currency": intent.currency.upper(),
        "client_secret": intent.client_secret,
        "next_action": None,
        "failure_code": failure_code or error.get("code"),
        "failure_message": failure_message or error.get("message"),
    }
    if next_action:
        redirect = next_action.get("redirect_to_url") or {}
        view["next_action"] = {"type": next_action.get("type", "use_stripe_sdk"), "redirect_url": redirect.get("url")}
    if intent.status == "canceled" and not view["failure_code"]:
        view["failure_code"] = "payment_canceled"
        view["failure_message"] = "The payment was cancelled before it completed."
    elif intent.status == "requires_payment_method" and not view["failure_code"]:
        view["failure_code"] = "payment_failed"
        view["failure_message"] = "The payment did not go through."
    return view


def _metadata(stripe_object):
    metadata = getattr(stripe_object, "metadata", None)
    return metadata.to_dict() if metadata else {}


def declined(intent_id, code, message):
    """A snapshot for a charge Stripe refused outright (no usable intent came back)."""
    return {"intent_id": intent_id, "order_id": None, "status": "requires_payment_method", "amount_cents": None,
            "currency": None,
            "client_secret": None, "next_action": None, "failure_code": code, "failure_message": message}


def refund_view(refund):
    return {"refund_id": refund.id, "status": refund.status,
            "failure_reason": getattr(refund, "failure_reason", None)}


class StripePayments:
    def __init__(self, client, return_url=None):
        self.client = client
        self.return_url = return_url

    def charge(self, payment, record_intent):
        """Create (or find) the order's intent and confirm it; returns its snapshot.

        After a crash between creating an intent and recording it, the next
        attempt finds that intent by its ``order_id`` metadata instead of
        creating a second one.
        """
        order_id = payment["order_id"]
        intent_id = payment["intent_id"]
        try:
            if intent_id is None and payment["charge_attempts"] > 1:
                intent_id = self._find_intent(order_id)
                if intent_id:
                    record_intent(intent_id)
            if intent_id is None:
                intent = self._call(
                    self.client.v1.payment_intents.create,
                    params={"amount": payment["amount_cents"], "currency": payment["currency"].lower(),
                            "payment_method": payment["payment_method"], "metadata": {"order_id": order_id}},
                    options={"idempotency_key": f"order-{order_id}-intent"},
                )
                intent_id = intent.id
                record_intent(intent_id)
            else:
                intent = self._call(self.client.v1.payment_intents.retrieve, intent_id)
            if intent.status == "requires_confirmation":
                params = {"return_url": self.return_url} if self.return_url else {}
                intent = self._call(self.client.v1.payment_intents.confirm, intent.id, params=params,
                                    options={"idempotency_key": f"order-{order_id}-confirm"})
        except stripe.CardError as exc:
            return declined(intent_id or _intent_of(exc), exc.code or "card_declined", exc.user_message or str(exc))
        except stripe.InvalidRequestError as exc:
            # e.g. an unknown payment method: retrying cannot help.
            return declined(intent_id, exc.code or "invalid_request", exc.user_message or str(exc))
        except UNAVAILABLE as exc:
            raise PaymentProviderUnavailable(str(exc))
        return snapshot(intent)

    def intent(self, intent_id):
        """The intent as Stripe has it now (webhooks and the timer re-fetch rather than trust a payload)."""
        try:
            return snapshot(self._call(self.client.v1.payment_intents.retrieve, intent_id))
        except UNAVAILABLE as exc:
            raise PaymentProviderUnavailable(str(exc))

    def cancel(self, intent_id):
        """Cancel an intent that no one will complete; if it moved on meanwhile, its new state."""
        try:
            intent = self._call(self.client.v1.payment_intents.cancel, intent_id)
            return snapshot(intent, "authentication_abandoned",
                            "The payment was not authenticated in time and was cancelled.")
        except stripe.InvalidRequestError:
            return self.intent(intent_id)  # succeeded or processing already: the caller sees which
        except UNAVAILABLE as exc:
            raise PaymentProviderUnavailable(str(exc))

    def refund(self, payment):
        """Start the payment's refund, or look at the one under way; returns refund_view.

        A failed or cancelled earlier refund is never reused: the store
        forgot its id, so a new one is created.
        """
        try:
            if payment["refund_id"]:
                return refund_view(self._call(self.client.v1.refunds.retrieve, payment["refund_id"]))
            existing = self._call(self.client.v1.refunds.list, params={"payment_intent": payment["intent_id"]}).data
            live = [refund for refund in existing if refund.status in ("succeeded", "pending", "requires_action")]
            if live:
                return refund_view(live[0])
            attempt = payment["refund_attempts"] + 1
            refund = self._call(
                self.client.v1.refunds.create,
                params={"payment_intent": payment["intent_id"], "metadata": {"order_id": payment["order_id"]}},
                options={"idempotency_key": f"order-{payment['order_id']}-refund-{attempt}"},
            )
            return refund_view(refund)
        except stripe.InvalidRequestError as exc:
            return {"refund_id": None, "status": "failed", "failure_reason": exc.user_message or str(exc)}
        except UNAVAILABLE as exc:
            raise PaymentProviderUnavailable(str(exc))

    def intents_since(self, since_epoch):
        """Every PaymentIntent created since then, as reconciliation compares them."""
        return [{"id": intent.id, "status": intent.status, "amount": intent.amount, "currency": intent.currency,
                 "created": intent.created, "metadata": _metadata(intent)}
                for intent in self._every(self.client.v1.payment_intents.list, since_epoch)]

    def refunds_since(self, since_epoch):
        return [{"id": refund.id, "payment_intent": refund.payment_intent, "status": refund.status,
                 "amount": refund.amount} for refund in self._every(self.client.v1.refunds.list, since_epoch)]

    def refund_intent(self, intent_id):
        """Refund a whole charge that no payment of ours claims (an operator's decision)."""
        try:
            refund = self._call(self.client.v1.refunds.create, params={"payment_intent": intent_id},
                                options={"idempotency_key": f"orphan-{intent_id}-refund"})
            return refund_view(refund)
        except UNAVAILABLE as exc:
            raise PaymentProviderUnavailable(str(exc))

    def _every(self, list_method, since_epoch):
        try:
            page = self._call(list_method, params={"created": {"gte": int(since_epoch)}, "limit": 100})
            return list(page.auto_paging_iter())
        except UNAVAILABLE as exc:
            raise PaymentProviderUnavailable(str(exc))

    def _find_intent(self, order_id):
        found = self._call(self.client.v1.payment_intents.search,
                           params={"query": f"metadata['order_id']:'{order_id}'"}).data
        usable = [intent for intent in found if intent.status != "canceled"]
        if usable:
            log.warning("found intent %s created by an earlier attempt", usable[0].id, extra={"order_id": order_id})
            return usable[0].id
        return None

    @staticmethod
    def _call(method, *args, **kwargs):
        if faults.roll("payment_provider_error_rate", service=NAME):
            raise stripe.APIConnectionError("fault injected: Stripe could not be reached")
        result = method(*args, **kwargs)
        if faults.roll("payment_provider_timeout_rate", service=NAME):
            raise stripe.APIConnectionError("fault injected: Stripe's answer was lost")
        return result


def _intent_of(exc):
    error = getattr(exc, "error", None)
    intent = getattr(error, "payment_intent", None) if error else None
    return getattr(intent, "id", None) if intent else None


def shared_session(connections, api_base):
    """One HTTP session for every worker, keeping up to ``connections`` open to Stripe at ``api_base``.

    The SDK keeps a session per thread, and each Nameko worker is a green thread of its own: every
    charge opened a new connection (a new TLS handshake with Stripe) and left it to the garbage
    collector. A worker never holds a connection while another uses it (urllib3's pool hands each
    request its own), and retries stay the SDK's (the adapter makes none).

    The proxy for ``api_base`` (``HTTPS_PROXY`` and ``NO_PROXY`` as requests reads them) is looked up
    once: requests otherwise reads the whole environment and ~/.netrc on every call, 3 % of the
    service's CPU under load (docs/performance.md, item 29). The SDK passes its own CA bundle on
    every call, so no other setting of the environment applied.
    """
    session = requests.Session()
    session.trust_env = False
    session.proxies = requests.utils.get_environ_proxies(api_base)
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=connections)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class PaymentProvider(DependencyProvider):
    def setup(self):
        settings = config.get("STRIPE") or {}
        api_base = settings.get("api_base", "https://api.stripe.com")
        connections = int(config.get(MAX_WORKERS_CONFIG_KEY, DEFAULT_MAX_WORKERS))
        self.client = stripe.StripeClient(
            settings.get("api_key", "sk_test_localstripe"),
            base_addresses={"api": api_base},
            max_network_retries=2,
            http_client=stripe.RequestsClient(timeout=float(settings.get("timeout_seconds", 10)),
                                              session=shared_session(connections, api_base)),
        )
        self.return_url = settings.get("return_url") or None

    def get_dependency(self, worker_ctx):
        return StripePayments(self.client, self.return_url)
