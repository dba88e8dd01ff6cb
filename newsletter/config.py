"""Typed settings, built once per entry point and passed down.

Sources, highest priority first: explicit keyword arguments (tests, CLI flags),
``NEWSLETTER_*`` environment variables, ``newsletter.toml`` in the working
directory (or the file named by ``NEWSLETTER_CONFIG``), then defaults.  The
defaults run on a fresh machine with no account: SQLite under ``./var`` and a
local outbox.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from newsletter.errors import ConfigError
from newsletter.errors import ValidationError as InputError
from newsletter.message import check_header_value

DEFAULT_SECRET = "dev-insecure-change-me"


def is_dns_name(value: str) -> bool:
    """Dot-separated labels of ASCII letters, digits and inner hyphens (a selector, a domain)."""
    labels = value.split(".")
    return all(
        0 < len(label) <= 63
        and label.isascii()
        and label.replace("-", "").isalnum()
        and not label.startswith("-")
        and not label.endswith("-")
        for label in labels
    )


class TopicSetting(BaseModel):
    """A topic editors and subscribers choose from, with the keywords that tag resources."""

    name: str
    keywords: list[str] = Field(default_factory=list)


class RelaySetting(BaseModel):
    """One relay of ``transport = "relays"``: an SMTP server or a SendGrid account."""

    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=60)
    kind: Literal["smtp", "sendgrid"] = "smtp"
    weight: int = Field(1, ge=0)  # share of batches; 0: standby, used when the others are down
    host: str = "127.0.0.1"
    port: int = 25
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password: SecretStr | None = None
    connections: int = Field(2, ge=1, le=32)
    api_key: SecretStr | None = None  # kind = "sendgrid"
    sendgrid_host: str = "https://api.sendgrid.com"


def _default_topics() -> list[TopicSetting]:
    from newsletter.resources.classify import DEFAULT_TOPICS

    return [TopicSetting(name=t.name, keywords=list(t.keywords)) for t in DEFAULT_TOPICS]


class Settings(BaseSettings):
    """Everything configurable; see the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix="NEWSLETTER_", extra="forbid", validate_default=True
    )

    # storage
    database_url: str = "sqlite:///var/newsletter.db"
    database_schema: str | None = None
    var_dir: Path = Path("var")
    # identity of the list
    organisation: str = "KnowledgeWorks"
    postal_address: str = "1515 Central Parkway, Suite 400, Cincinnati, OH 45202, USA"
    base_url: str = "http://127.0.0.1:8000"
    from_email: str = "newsletter@example.org"
    from_name: str = "KnowledgeWorks Newsletter"
    reply_to: str | None = None
    list_id: str = "newsletter.example.org"
    timezone: str = "UTC"
    logo_url: str | None = None
    topics: list[TopicSetting] = Field(default_factory=_default_topics)
    # rendering
    template_dir: Path | None = None
    issues_dir: Path = Path("issues")
    # security
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    debug: bool = False
    confirm_token_max_age_days: int = 7
    # sending
    transport: Literal["outbox", "smtp", "sendgrid", "memory", "relays"] = "outbox"
    outbox_dir: Path | None = None
    batch_size: int = Field(1000, ge=1, le=1000)
    rate_limit_per_second: float | None = None
    max_consecutive_failures: int = 5
    sendgrid_api_key: SecretStr | None = None
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_webhook_public_key: str | None = None
    webhook_max_age_seconds: int = 600
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Literal["none", "starttls", "ssl"] = "none"
    smtp_connections: int = Field(2, ge=1, le=32)
    smtp_timeout_seconds: float = 30.0
    relays: list[RelaySetting] = Field(default_factory=list)  # transport = "relays" (toml)
    relay_down_seconds: float = Field(60.0, gt=0)  # a failed relay rests this long
    # deliverability: per receiving domain pacing and the sending domain's warm-up
    domain_limits: dict[str, float] = Field(default_factory=dict)  # messages per minute
    domain_backoff_seconds: float = Field(60.0, gt=0)  # after a 4xx from a domain, doubling
    warmup: bool = False
    warmup_first_day: int = Field(200, ge=1)
    warmup_factor: float = Field(2.0, ge=1.0)
    warmup_start: date | None = None
    sunset: bool = True
    sunset_after_campaigns: int = Field(6, ge=1)  # no open or click in this many: inactive
    sunset_grace_days: int = Field(14, ge=0)  # after a re-engagement campaign, then suppressed
    # deliverability: DKIM signing of SMTP and outbox mail (newsletter.deliverability)
    dkim_selectors: list[str] = Field(default_factory=list)
    dkim_domain: str | None = None
    dkim_key_dir: Path | None = None
    bounce_domain: str | None = None  # the envelope (Return-Path) domain; default: From's
    sending_ips: list[str] = Field(default_factory=list)  # the relays' public addresses, for SPF
    dns_resolver: str | None = None  # "host" or "host:port"; default: the system's resolvers
    dns_timeout_seconds: float = Field(5.0, gt=0)
    # scheduling
    misfire_grace_seconds: int = 3600

    @field_validator("from_email", "from_name", "reply_to", "organisation", "list_id")
    @classmethod
    def _one_line(cls, value: str | None, info: ValidationInfo) -> str | None:
        """These end up in email headers: no line break may smuggle in another header."""
        try:
            return None if value is None else check_header_value(str(info.field_name), value)
        except InputError as exc:
            raise ValueError(exc.message) from None

    @field_validator("dkim_selectors")
    @classmethod
    def _selectors(cls, value: list[str]) -> list[str]:
        for selector in value:
            if not is_dns_name(selector):
                raise ValueError(f"{selector!r} is not a DNS name (letters, digits, hyphens)")
        if len(set(value)) != len(value):
            raise ValueError("a selector is listed twice")
        return value

    @field_validator("relays")
    @classmethod
    def _relay_names(cls, value: list[RelaySetting]) -> list[RelaySetting]:
        names = [relay.name for relay in value]
        if len(set(names)) != len(names):
            raise ValueError("two relays have the same name")
        if value and not any(relay.weight for relay in value):
            raise ValueError("at least one relay needs a weight above 0")
        return value

    @field_validator("sending_ips")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        import ipaddress

        return [str(ipaddress.ip_address(address)) for address in value]

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @property
    def outbox_path(self) -> Path:
        return self.outbox_dir or self.var_dir / "outbox"

    @property
    def from_domain(self) -> str:
        return self.from_email.rpartition("@")[2].lower()

    @property
    def dkim_signing_domain(self) -> str:
        """``d=``: the From domain unless set, so DKIM aligns with it for DMARC."""
        return (self.dkim_domain or self.from_domain).lower()

    @property
    def dkim_key_path(self) -> Path:
        return self.dkim_key_dir or self.var_dir / "dkim"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get("NEWSLETTER_CONFIG", "newsletter.toml"))
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_file),
        )


def load_settings(**overrides: Any) -> Settings:
    """Build settings once, turning pydantic's multi-line report into one clear line."""
    config = os.environ.get("NEWSLETTER_CONFIG")
    if config and not Path(config).is_file():
        raise ConfigError(f"config file {config} (NEWSLETTER_CONFIG) does not exist")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(f"invalid setting {field}: {first['msg']}") from None
    except (OSError, ValueError) as exc:  # unreadable or malformed newsletter.toml
        raise ConfigError(f"cannot read settings: {exc}") from None


def classify_topics(settings: Settings) -> list[Any]:
    """The configured topics as ``classify.Topic`` values (imported late: classify is a leaf)."""
    from newsletter.resources.classify import Topic

    return [Topic(name=t.name, keywords=tuple(t.keywords)) for t in settings.topics]
