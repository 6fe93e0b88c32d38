"""The gateway's routes, one blueprint per resource of the contract (docs/api.md)."""
from web_gateway.routes import admin, health, orders, products, users, webhooks

BLUEPRINTS = (health.blueprint, users.blueprint, products.blueprint, orders.blueprint, admin.blueprint,
              webhooks.blueprint)
