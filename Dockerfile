# The router image: one distribution, console script `hotline`.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOTLINE_DATA_DIR=/var/lib/hotline
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY models ./models
COPY classifier ./classifier
COPY config ./config
# the data directory (and the volumes compose mounts on it, which start with its owner) belongs to the user
# the services run as: a root-owned one refused web.secret, faust's datadir and clock.json to `nobody`
RUN pip install --no-cache-dir . && mkdir -p /var/lib/hotline/models && chown -R nobody:nogroup /var/lib/hotline
USER nobody
ENTRYPOINT ["hotline"]
CMD ["worker"]
