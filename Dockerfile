# One image pattern for every component of the shop.
#   docker build --build-arg COMPONENT=svc_order -t shop/svc_order .
# COMPONENT is a top-level folder (svc_* or web_gateway); its package and
# common/ are installed with the pinned versions of constraints.txt.
FROM python:3.11-slim

ARG COMPONENT
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SHOP_ENV=production

RUN test -n "${COMPONENT}" || { echo "build with --build-arg COMPONENT=<svc_user|svc_product|svc_inventory|svc_order|svc_payment|web_gateway>" >&2; exit 1; }
WORKDIR /app
# Dependencies first, read from the two pyproject files alone: editing a source file
# reuses this layer instead of reinstalling some fifty packages.
COPY constraints.txt ./
COPY common/pyproject.toml ./common/pyproject.toml
COPY ${COMPONENT}/pyproject.toml ./${COMPONENT}/pyproject.toml
RUN python -c "import sys, tomllib; print('\n'.join(d for f in sys.argv[1:] for d in tomllib.load(open(f, 'rb'))['project']['dependencies'] if not d.startswith('shop-common')))" \
        common/pyproject.toml ${COMPONENT}/pyproject.toml > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt
COPY common ./common
COPY ${COMPONENT} ./${COMPONENT}
RUN pip install --no-deps ./common ./${COMPONENT} \
    && useradd --system --uid 10001 --user-group --home /app shop
WORKDIR /app/${COMPONENT}
# Numeric, so Kubernetes can check runAsNonRoot.
USER 10001:10001
# Each component's metrics port also answers /health/live and /health/ready (the gateway: /health on 8000).
EXPOSE 8000 9100-9105
# The command (nameko run … or gunicorn …) is set per component in docker-compose.yml and deploy/k8s.
