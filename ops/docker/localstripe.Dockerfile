# localstripe for docker compose: the versions `make test` runs, installed at build time.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY constraints.txt /tmp/constraints.txt
RUN pip install -c /tmp/constraints.txt localstripe && useradd --system stripe
COPY ops/localstripe_server.py /ops/localstripe_server.py
USER stripe
EXPOSE 8420
CMD ["python", "/ops/localstripe_server.py", "--host", "0.0.0.0"]
