# syntax=docker/dockerfile:1
# Slicestar production image (README "Deployment with Docker").
#   docker build -t slicestar .
#   docker compose up -d
# Everything the app keeps lives in /app/db (mount ./db there); the rest of the image is read-only
# for the app user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with the hash-pinned dependencies ------------------------------------
FROM ${PYTHON_IMAGE} AS build
# 1: build libargon2 for AVX2 as `make install` does where the CPU has it (about 45 % less CPU
# per sign-in); the image then runs only on CPUs with AVX2. 0 (default): the portable wheel.
ARG ARGON2_AVX2=0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
COPY requirements.txt requirements-build.txt /tmp/
COPY scripts/build-argon2-avx2.sh /tmp/
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r /tmp/requirements.txt
RUN if [ "$ARGON2_AVX2" = 1 ]; then apt-get update && apt-get install -y --no-install-recommends cmake gcc libc6-dev make && ARGON2_AVX2=1 sh /tmp/build-argon2-avx2.sh /opt/venv/bin/python /tmp/requirements.txt /tmp/requirements-build.txt; fi
# The server runs with -OO (docker/entrypoint.sh): compile the bytecode it loads now, once.
RUN /opt/venv/bin/python -OO -m compileall -q /opt/venv/lib

# --- runtime: no compilers, no pip cache, a non-root user -------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEB_CONCURRENCY=2 \
    GRACEFUL_TIMEOUT=20
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY alembic.ini pyproject.toml ./
COPY src ./src
RUN python -OO -m compileall -q src && python -m compileall -q src
COPY docker ./docker
RUN mkdir -p /app/db && chown app:app /app/db && chmod 0750 /app/db && chmod 0755 docker/entrypoint.sh
USER app:app
VOLUME ["/app/db"]
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["python", "/app/docker/healthcheck.py"]
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["serve"]
