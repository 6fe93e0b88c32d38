"""Stripe's webhook: verified here (signature and age, Stripe's 5-minute tolerance), applied by Payment."""
import json

import stripe
from flask import Blueprint, request

from web_gateway.errors import ApiError
from web_gateway.services import gateway, services

blueprint = Blueprint("webhooks", __name__)


@blueprint.post("/webhooks/stripe")
def stripe_webhook():
    secret = (gateway().config.get("STRIPE") or {}).get("webhook_secret")
    if not secret:
        raise ApiError(503, "webhooks_disabled", "Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET).")
    payload = request.get_data(cache=False)
    signature = request.headers.get("Stripe-Signature")
    if not signature:
        raise ApiError(400, "invalid_signature", "The Stripe-Signature header is missing.")
    try:
        # What stripe.Webhook.construct_event does, without building an SDK object we would not use.
        stripe.WebhookSignature.verify_header(payload, signature, secret, stripe.Webhook.DEFAULT_TOLERANCE)
        body = json.loads(payload)
    except stripe.SignatureVerificationError:
        raise ApiError(400, "invalid_signature", "The signature does not match, or the event is too old.")
    except ValueError:
        raise ApiError(400, "validation_error", "The body is not a Stripe event.")
    if not isinstance(body, dict):
        raise ApiError(400, "validation_error", "The body is not a Stripe event.")
    result = services().payments.apply_stripe_event(body)
    return {"received": True, "applied": result["applied"]}
