# One image for the api, worker and beat services of docker-compose.yml.
# The project is built into a wheel and installed; the code is owned by root and
# read-only to the server, which runs as the unprivileged user `fhir` and writes
# only to its data directory /data (a volume: outbox, beat schedule, generated keys).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    FHIR_DATA_DIR=/data

WORKDIR /src
COPY pyproject.toml README.md ./
COPY fhir_server ./fhir_server
COPY profiles ./profiles
COPY terminology ./terminology
RUN pip wheel --no-deps --wheel-dir /tmp/wheels . \
    && pip install /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels /src \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home fhir \
    && mkdir /data && chown fhir:fhir /data && chmod 0750 /data

WORKDIR /data
VOLUME /data
USER fhir
EXPOSE 8000
CMD ["fhir-server", "serve", "--host", "0.0.0.0", "--port", "8000"]
