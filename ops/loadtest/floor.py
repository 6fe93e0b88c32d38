"""The floor for a cached catalogue page: a bare Flask app doing one Redis GET of a stored page.

``make bench`` runs it under gunicorn with the gateway's worker model (``gthread``, the same
workers and threads) and compares the shop's cached ``GET /products`` with it: whatever the shop
spends beyond this is its own overhead (routing, auth, edge checks, telemetry, serialisation).
"""
import os

import redis
from flask import Flask, Response

KEY = "shop:bench:floor-page"
app = Flask(__name__)
store = redis.Redis.from_url(os.environ["REDIS_URL"])


@app.get("/page")
def page():
    return Response(store.get(KEY), mimetype="application/json")
