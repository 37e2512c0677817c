# syntax=docker/dockerfile:1
#
# raypay as one Ray head node that runs the Serve app of serve_config.yaml.
# Redis and Kafka are separate services (docker-compose.yml); the app finds them
# through REDIS_URL and KAFKA_BOOTSTRAP_SERVERS (see raypay/settings.py).
#
#   docker build -t raypay .
#   docker compose up          # the whole stack
FROM python:3.11-slim

# Ray writes its built-in Grafana dashboards (Serve: requests, errors and latency by
# route and deployment, from the ray_serve_* metrics) into this folder; compose shares
# it with Grafana. RAY_LOGGING_CONFIG_ENCODING: the actors' logs as JSON lines, as
# `raypay up` runs them (ray.LoggingConfig for a driver that sets none, here `serve run`).
# RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH: Serve's proxy checks the headers it reads
# itself with deployments/edge.py first (a malformed X-Request-ID was a plain-text 500).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_METRICS_GRAFANA_DASHBOARD_OUTPUT_DIR=/var/lib/raypay/grafana-dashboards \
    RAY_LOGGING_CONFIG_ENCODING=JSON \
    RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH=deployments.edge:middlewares

RUN useradd --create-home --uid 1000 raypay \
    && mkdir -p /var/lib/raypay/grafana-dashboards \
    && chown -R raypay:raypay /var/lib/raypay
WORKDIR /app

# Only what the package needs: no .git, virtualenvs or local data in the image.
COPY pyproject.toml ./
COPY raypay ./raypay
COPY actors ./actors
COPY deployments ./deployments
RUN --mount=type=cache,target=/root/.cache/pip pip install .
COPY serve_config.yaml ./

# The unprivileged user created above (numeric: runAsNonRoot-friendly).
USER 1000:1000

#      Serve HTTP  Ray dashboard  Ray metrics (Prometheus)
EXPOSE 8000        8265           8080

# 1. A Ray head; its dashboard listens on all interfaces (the container's network),
#    its metrics (ray_serve_* included) are served for Prometheus on 8080.
# 2. `serve start --http-host 0.0.0.0`: serve_config.yaml says host 127.0.0.1, which
#    is right outside a container but unreachable from outside one. Ray has no env or
#    CLI override of an explicit `http_options.host` (RAY_SERVE_DEFAULT_HTTP_HOST only
#    fills in a missing one); starting Serve first with the container's host is Ray's
#    own way: `serve run` then keeps the running Serve's HTTP options (it logs "The
#    new HTTP config is ignored") and deploys the apps.
#    --http-port repeats serve_config.yaml's port (tests/unit/test_compose.py checks).
# 3. `serve run serve_config.yaml` deploys the file and blocks, streaming logs; it is
#    the container's main process, so the container ends when it does. --address=auto
#    joins the head started in 1 (and fails, rather than start a private Ray, without it).
CMD ["sh", "-c", "ray start --head --port=6380 --dashboard-host=0.0.0.0 --dashboard-port=8265 --metrics-export-port=8080 --disable-usage-stats && serve start --http-host=0.0.0.0 --http-port=8000 && exec serve run --address=auto serve_config.yaml"]
