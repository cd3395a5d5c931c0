# The gmv worker image (docker-compose.yml builds it for the worker and simulator services).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY streams streams
COPY sinks sinks
COPY alerts alerts
COPY dashboards dashboards
COPY tools tools
RUN pip install --no-cache-dir . \
 && useradd --system --create-home --home-dir /var/lib/gmv gmv
USER gmv
ENV GMV_DATA_DIR=/var/lib/gmv
# 6066: dashboard and API (bearer token); 9108: Prometheus metrics (GMV_METRICS_PORT).
EXPOSE 6066 9108
CMD ["gmv", "worker"]
