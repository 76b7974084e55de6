"""One typed settings object, read from TLOUNGE_* environment variables."""

from __future__ import annotations

import ipaddress
import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "TLOUNGE_"

# Values that show up in tutorials and .env templates; refusing them keeps a
# copied example from reaching production.
_PLACEHOLDER_SECRETS = {"secret", "changeme", "change-me", "dev", "test", "jwt-secret"}
MIN_SECRET_LENGTH = 32
MIN_SECRET_DISTINCT = 10


class SettingsError(Exception):
    """A configuration value is missing or wrong; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    env: Literal["dev", "production"] = "dev"
    data_dir: Path = Path(".tlounge")

    api_host: str = "127.0.0.1"
    api_port: int = Field(8080, ge=1, le=65535)
    # dev mode allows any localhost origin; production allows only these
    cors_origins: Annotated[list[str], NoDecode] = []
    # X-Forwarded-For is believed only from these addresses or networks; with
    # none, every peer is itself, so a header cannot dodge a per-address limit
    trusted_proxies: Annotated[list[str], NoDecode] = []

    database_url: str | None = None
    database_pool_min: int = Field(2, ge=1)
    database_pool_max: int = Field(20, ge=1)

    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_port: int = Field(7233, ge=1, le=65535)
    temporal_ui_port: int = Field(8233, ge=1, le=65535)
    reservation_task_queue: str = "reservations"
    mail_task_queue: str = "mail"
    # The sandbox re-imports the workflow module for every run and wraps every
    # payload conversion: a quarter of the reservation worker's CPU per booking.
    # The test suite runs every workflow inside it, which is where a stray
    # non-deterministic call is caught; production runs without its cost.
    workflow_sandbox: bool = False

    valkey_url: str | None = None
    valkey_port: int = Field(6379, ge=1, le=65535)

    smtp_host: str | None = None
    smtp_port: int = Field(8025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout: float = Field(10.0, gt=0)
    mail_from: str = "T-Lounge <noreply@tlounge.local>"
    # Mail is off a booking's path. At this niceness the kernel runs the booking's
    # own work first when the cores are busy, and mail takes the time left over.
    mail_worker_nice: int = Field(10, ge=0, le=19)

    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    s3_bucket: str = "tlounge-images"
    s3_region: str = "us-east-1"
    s3_secure: bool = True
    image_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    image_max_pixels: int = Field(40_000_000, ge=1)
    # any body but an image upload; and how long a client may take to send one
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    body_read_timeout_seconds: float = Field(30.0, gt=0)
    # a request line and headers are a few hundred bytes: seconds are plenty
    head_read_timeout_seconds: float = Field(10.0, gt=0)

    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "tlounge"
    jwt_access_ttl_seconds: int = Field(3600, ge=60)
    jwt_refresh_ttl_seconds: int = Field(30 * 24 * 3600, ge=300)

    # attempts at sign-in, registration and password change, per fixed window
    auth_rate_window_seconds: int = Field(60, ge=1)
    # per account from one address: a stranger's wrong guesses shut out that
    # stranger, not the account's owner at another address
    auth_rate_per_account: int = Field(10, ge=1)
    # per account from every address together: a guess spread over many
    # addresses is slowed, and it takes that many to lock anyone out
    auth_rate_per_account_total: int = Field(100, ge=1)
    auth_rate_per_address: int = Field(30, ge=1)
    # bookings, moves and cancels a client may send per minute: each starts or
    # wakes a workflow, so one account must not flood Temporal
    booking_rate_per_client: int = Field(60, ge=1)
    # mails to one address in any window of this many minutes; past it the rest
    # wait their turn: an account registered with someone else's address cannot
    # turn a script of moves into a flood of mail there (0: no limit)
    mail_recipient_limit: int = Field(10, ge=0)
    mail_recipient_window_minutes: int = Field(10, ge=1)

    default_coworking_id: UUID | None = None

    worker_metrics_port: int = Field(0, ge=0, le=65535)
    temporal_metrics_port: int = Field(0, ge=0, le=65535)
    # exporters listen on loopback unless a deployment opens them to its scraper
    metrics_host: str = "127.0.0.1"
    # the API's /metrics shares its port with the public API
    metrics_token: SecretStr | None = None
    log_json: bool | None = None

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir_named(cls, value: object) -> object:
        # an empty value would be the current folder, a checkout say
        if isinstance(value, str) and not value.strip():
            raise ValueError(
                "empty; unset it for the default .tlounge, or name a folder"
            )
        return value

    @field_validator("data_dir")
    @classmethod
    def _data_dir_is_a_folder(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} exists and is not a folder")
        return value

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value

    @model_validator(mode="after")
    def _refuse_weak_secret_outside_dev(self) -> Settings:
        if self.env == "dev":
            return self
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
        if not secret:
            raise ValueError("TLOUNGE_JWT_SECRET: required outside dev mode")
        if len(secret) < MIN_SECRET_LENGTH or secret.lower() in _PLACEHOLDER_SECRETS:
            raise ValueError(
                f"TLOUNGE_JWT_SECRET: must be a random value of at least "
                f"{MIN_SECRET_LENGTH} characters outside dev mode"
            )
        # 32 of one letter is no key; hex, the plainest random text, has 16
        if len(set(secret)) < MIN_SECRET_DISTINCT:
            raise ValueError(
                f"TLOUNGE_JWT_SECRET: has only {len(set(secret))} different"
                f" character(s), fewer than the {MIN_SECRET_DISTINCT} a random value"
                " has; make one with `openssl rand -hex 32`"
            )
        return self

    @property
    def is_dev(self) -> bool:
        return self.env == "dev"

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def effective_log_json(self) -> bool:
        return (not self.is_dev) if self.log_json is None else self.log_json


def describe_error(error: ValidationError) -> str:
    """One line naming each offending variable and what is wrong with it."""
    parts = []
    for item in error.errors():
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["loc"]:
            parts.append(f"{ENV_PREFIX}{str(item['loc'][0]).upper()}: {message}")
        else:
            parts.append(message)
    return "; ".join(parts)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        raise SettingsError(f"invalid configuration: {describe_error(error)}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def settings_or_exit() -> Settings:
    """For entry points: a bad value stops the process with one clear line."""
    try:
        return get_settings()
    except SettingsError as error:
        print(f"tlounge: {error}", file=sys.stderr)  # noqa: T201
        raise SystemExit(2) from None
