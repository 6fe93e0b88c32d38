"""Gunicorn settings for the gateway (``make run`` and the Dockerfile use this file)."""
import os

bind = f"{os.environ.get('SHOP_GATEWAY_HOST', '127.0.0.1')}:{os.environ.get('SHOP_GATEWAY_PORT', '8000')}"
workers = int(os.environ.get("SHOP_GATEWAY_WORKERS", "2"))
# Threads, each with its own long-lived RPC client (see web_gateway.rpc).
worker_class = "gthread"
threads = int(os.environ.get("SHOP_GATEWAY_THREADS", "8"))
timeout = 30
graceful_timeout = 10
accesslog = None
# No control socket: it defaults to one path per user, which two gateways
# (a running shop and the test suite's) would fight over.
control_socket_disable = True
