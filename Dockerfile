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
COPY constraints.txt ./
COPY common ./common
COPY ${COMPONENT} ./${COMPONENT}
RUN pip install -c constraints.txt ./common ./${COMPONENT} \
    && useradd --system --home /app shop
WORKDIR /app/${COMPONENT}
USER shop
# The command (nameko run … or gunicorn …) is set per component in docker-compose.yml.
