# Slim image, non-root user; runs run_bot.py (long polling by default).
FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN groupadd --system clinic && useradd --system --gid clinic --home /app clinic

# Dependencies first, so editing content or code does not reinstall them.
COPY pyproject.toml README.md ./
COPY bot/__init__.py bot/__init__.py
COPY handlers/__init__.py handlers/__init__.py
RUN pip install .

COPY --chown=clinic:clinic . .
RUN mkdir -p /app/data && chown clinic:clinic /app/data

USER clinic
# SQLite lives in a volume by default; docker-compose points DATABASE_URL at PostgreSQL.
ENV DATABASE_URL=sqlite+aiosqlite:////app/data/clinic.db
VOLUME ["/app/data"]
# Webhook mode (CMD ["run", "--webhook"]): reachable from outside the container, /healthz for
# the load balancer on the same port. Long polling (the default) serves no port.
ENV WEBHOOK_LISTEN=0.0.0.0
EXPOSE 8443
ENTRYPOINT ["python", "run_bot.py"]
CMD ["run"]
