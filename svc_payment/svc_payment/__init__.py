"""Payment service: charges and refunds through Stripe."""
