# nexus-otel's own services for docker-compose.yml: the collector, the recommender, and
# the demo (history backfill and live traffic). One image, the command picks the role.
#
#   docker build -t nexus-otel:local .
#   docker run --rm -p 4318:4318 nexus-otel:local nexus-otel collector --host 0.0.0.0
#
# prometheus and promtool are copied in only for the demo's one-shot history step
# (deploy/demo_history.py turns the backfilled history into TSDB blocks).
FROM prom/prometheus:v2.53.2 AS prometheus

FROM python:3.11.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --from=prometheus /bin/prometheus /bin/promtool /usr/local/bin/

WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY nexus_otel ./nexus_otel
COPY exporters ./exporters
COPY recommender ./recommender
# The demo traffic uses the official OpenAI and Anthropic clients on a mock transport.
# gcc builds the collector's C reader of OTLP log records (setup.py) and is removed after.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install ".[all]" "openai>=1.60" "anthropic>=0.40" "httpx>=0.27" \
    && cd / && python -c "from exporters.otlp.call_rows import accelerated; assert accelerated()" && cd /app \
    && apt-get purge -y --auto-remove gcc libc6-dev && rm -rf /var/lib/apt/lists/*
COPY rules ./rules
COPY deploy ./deploy

RUN useradd --system --uid 10001 --home-dir /app nexus && mkdir -p /data && chown nexus /data
USER nexus
VOLUME ["/data"]
EXPOSE 4318 8090
CMD ["nexus-otel", "--help"]
