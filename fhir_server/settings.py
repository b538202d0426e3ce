"""The one place that reads the environment.

Every knob of the server is a field here with its default; the README table is
kept in step with it (a test compares the two).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server configuration, read from `FHIR_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="FHIR_", extra="ignore")

    environment: str = Field(
        default="development", description="`development` or `production`."
    )
    host: str = Field(default="127.0.0.1", description="Address `serve` binds to.")
    port: int = Field(default=8000, description="Port `serve` listens on.")
    public_base_url: str | None = Field(
        default=None,
        description="External URL of the FHIR base (e.g. https://clinic.example/fhir); "
        "derived from host and port when unset.",
    )
    mongodb_uri: str | None = Field(
        default=None,
        description="MongoDB connection string; unset starts the embedded store.",
    )
    database: str = Field(default="fhir", description="MongoDB database name.")
    data_dir: Path = Field(
        default=Path(".fhir-data"), description="Where the embedded store keeps its data."
    )
    use_transactions: bool | None = Field(
        default=None,
        description="Force MongoDB transactions on or off; unset detects a replica set.",
    )
    max_body_bytes: int = Field(default=1_048_576, description="Largest request body (bytes).")
    max_bundle_entries: int = Field(
        default=1000, description="Most entries accepted in a batch/transaction Bundle."
    )
    default_page_size: int = Field(default=20, description="Search `_count` when none is given.")
    max_page_size: int = Field(default=500, description="Largest `_count` honoured.")
    log_level: str = Field(default="INFO", description="Python log level.")
    secret_key: str = Field(
        default="dev-insecure-secret-key-change-me",
        description="Secret for keys and tokens; must be set in production.",
    )

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production" and self.secret_key.startswith("dev-insecure"):
            raise ValueError(
                "FHIR_SECRET_KEY is the development default; set a long random value "
                "when FHIR_ENVIRONMENT=production"
            )
        return self

    @property
    def base_url(self) -> str:
        """The FHIR base URL that appears in Location headers, links and fullUrls."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.host}:{self.port}/fhir"


@lru_cache
def get_settings() -> Settings:
    return Settings()
