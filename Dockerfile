# One image for the api, worker and beat services of docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY fhir_server ./fhir_server
COPY profiles ./profiles
COPY terminology ./terminology
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app fhir

USER fhir
EXPOSE 8000
CMD ["fhir-server", "serve", "--host", "0.0.0.0", "--port", "8000"]
