"""Typed settings, built once per entry point and passed down.

Sources, highest priority first: explicit keyword arguments (tests, CLI flags),
``NEWSLETTER_*`` environment variables, ``newsletter.toml`` in the working
directory (or the file named by ``NEWSLETTER_CONFIG``), then defaults.  The
defaults run on a fresh machine with no account: SQLite under ``./var`` and a
local outbox.
"""

from __future__ import annotations

import os
import tomllib
from datetime import date
from functools import cached_property
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
from newsletter.keyring import DEFAULT_SECRET, Keyring, resolve
from newsletter.message import check_header_value

__all__ = ["DEFAULT_SECRET", "Settings", "TopicSetting", "classify_topics", "load_settings"]


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
    secret_key: SecretStr | None = None  # None: the key file in var_dir (newsletter.keyring)
    previous_secret_keys: list[SecretStr] = Field(default_factory=list)
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
    sending_ips: list[str] = Field(default_factory=list)  # the relays' public addresses, for SPF
    dns_resolver: str | None = None  # "host" or "host:port"; default: the system's resolvers
    dns_timeout_seconds: float = Field(5.0, gt=0)
    # scheduling
    misfire_grace_seconds: int = 3600
    # reader feedback (newsletter.tracking): first-party click and open tracking
    tracking: bool = True  # off: links go straight to their destination, no open pixel
    track_opens: bool = True  # the open pixel (clicks stay tracked while tracking is on)
    tracking_retention_days: int = Field(395, ge=1)  # raw click/open events are purged after
    scanner_window_seconds: float = Field(10.0, ge=0)  # a click this soon after sending: machine
    # bounces and complaints (newsletter/bounces; README "Bounces and complaints")
    bounce_domain: str | None = None  # None: the domain of from_email
    bounce_local_part: str = "bounces"
    bounce_extra_local_parts: list[str] = Field(
        default_factory=lambda: ["fbl", "abuse", "postmaster"]
    )
    bounce_smtp_host: str = "127.0.0.1"
    bounce_smtp_port: int = Field(25, ge=0, le=65535)
    bounce_max_message_bytes: int = Field(10 * 1024 * 1024, ge=64 * 1024)
    bounce_mailbox_protocol: Literal["imap", "pop3"] = "imap"
    bounce_mailbox_host: str | None = None  # None: no mailbox is polled
    bounce_mailbox_port: int | None = None  # None: 993/143 (IMAP), 995/110 (POP3)
    bounce_mailbox_security: Literal["ssl", "starttls", "none"] = "ssl"
    bounce_mailbox_user: str | None = None
    bounce_mailbox_password: SecretStr | None = None
    bounce_mailbox_folder: str = "INBOX"
    bounce_mailbox_done_folder: str | None = None  # IMAP: move here instead of deleting
    bounce_poll_minutes: float = Field(5.0, gt=0)
    soft_bounce_limit: int = Field(3, ge=1)
    soft_bounce_window_days: float = Field(14.0, gt=0)
    guard_complaint_rate: float = Field(0.003, ge=0, le=1)
    guard_hard_bounce_rate: float = Field(0.05, ge=0, le=1)
    guard_min_sent: int = Field(500, ge=1)
    # preflight in the editor and `issue preflight`: fetch each image (cached) and warn
    preflight_fetch_images: bool = True
    # outgoing webhooks (newsletter.automation.webhooks; README "Outgoing webhooks")
    webhook_allow_private_addresses: bool = False  # loopback/private URLs: tests, intranets only
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=120)  # connect, and each read
    webhook_retry_hours: float = Field(24.0, gt=0)  # retried this long, then failed
    webhook_concurrency: int = Field(2, ge=1, le=32)  # requests in flight per endpoint
    webhook_workers: int = Field(8, ge=1, le=64)  # HTTP threads per dispatcher
    webhook_poll_seconds: float = Field(1.0, gt=0)
    webhook_log_days: int = Field(30, ge=1)  # finished deliveries (and their events) kept
    # fetching pages for the library: sources and link checks (README "Sources and link health")
    fetch_allow_private_addresses: bool = False  # loopback/private hosts: tests, intranets only
    fetch_timeout_seconds: float = Field(10.0, gt=0, le=120)  # the whole answer, not each read
    fetch_max_bytes: int = Field(5_000_000, ge=1024)  # a larger answer is refused
    fetch_user_agent: str = "newsletter-library/1 (feed reader and link checker)"
    sources_poll_minutes: float = Field(5.0, gt=0)  # the scheduler looks for due sources this often
    link_check_hours: float = Field(24.0, gt=0)  # each resource's link checked this often
    link_check_concurrency: int = Field(8, ge=1, le=64)  # requests in flight
    # the token API under /api/v1 (README "API tokens")
    api_rate_limit_per_minute: int = Field(600, ge=1)  # per token, per process
    # request and upload limits (bytes), enforced while the body streams in
    request_max_bytes: int = Field(1024 * 1024, ge=1024)
    import_max_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    # images for issues (newsletter.media; README "Images and the media library")
    media_storage: Literal["local", "s3"] = "local"
    media_dir: Path | None = None  # None: var_dir/media (media_storage = "local")
    image_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)  # an upload or a fetched image
    image_fetch_timeout_seconds: float = Field(10.0, gt=0, le=120)  # connect, and each read
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None  # None: AWS; or MinIO, R2, ... (path-style addressing)
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    media_public_url: str | None = None  # where readers fetch the bucket's objects

    @field_validator("from_email", "from_name", "reply_to", "organisation", "list_id")
    @classmethod
    def _one_line(cls, value: str | None, info: ValidationInfo) -> str | None:
        """These end up in email headers: no line break may smuggle in another header."""
        try:
            return None if value is None else check_header_value(str(info.field_name), value)
        except InputError as exc:
            raise ValueError(exc.message) from None

    @field_validator("bounce_local_part", "bounce_domain")
    @classmethod
    def _bounce_address_part(cls, value: str | None) -> str | None:
        """Parts of the VERP address: plain, lowercase, and free of the ``+`` separator."""
        if value is None:
            return None
        allowed = "abcdefghijklmnopqrstuvwxyz0123456789-."
        if not value or not set(value.lower()) <= set(allowed):
            raise ValueError("may hold only letters, digits, '-' and '.'")
        return value.lower()

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

    @cached_property
    def keyring(self) -> Keyring:
        """The signing key and the keys that still verify, resolved on first use."""
        explicit = self.secret_key.get_secret_value() if self.secret_key is not None else None
        previous = [key.get_secret_value() for key in self.previous_secret_keys]
        return resolve(explicit, previous, self.var_dir, debug=self.debug)

    @property
    def tracking_dir(self) -> Path:
        """Where the web app spools clicks and opens before they reach the database."""
        return self.var_dir / "tracking"

    @property
    def outbox_path(self) -> Path:
        return self.outbox_dir or self.var_dir / "outbox"

    @property
    def bounce_domain_name(self) -> str:
        """Where bounces go: ``bounce_domain``, else the domain of the From address."""
        domain = self.bounce_domain or self.from_email.rpartition("@")[2] or "localhost"
        return domain.lower()

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
    toml_file = config or "newsletter.toml"
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "settings"
        source = _source_of(str(first["loc"][0]) if first["loc"] else "", toml_file, overrides)
        raise ConfigError(f"invalid setting {field}{source}: {_plain(first['msg'])}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{toml_file}: not valid TOML: {_plain(str(exc))}") from None
    except (OSError, ValueError) as exc:  # unreadable newsletter.toml
        raise ConfigError(f"{toml_file}: cannot read settings: {_plain(str(exc))}") from None


def _source_of(name: str, toml_file: str, overrides: dict[str, Any]) -> str:
    """Where a bad value came from, so the user knows what to edit."""
    if not name or name in overrides:
        return ""
    if f"NEWSLETTER_{name.upper()}" in os.environ:
        return f" (NEWSLETTER_{name.upper()})"
    return f" (in {toml_file})" if Path(toml_file).is_file() else ""


def _plain(message: str) -> str:
    """Pydantic's message without its "Value error, " prefix, on one line."""
    return " ".join(
        message.removeprefix("Value error, ").removeprefix("Assertion failed, ").split()
    )


def classify_topics(settings: Settings) -> list[Any]:
    """The configured topics as ``classify.Topic`` values (imported late: classify is a leaf)."""
    from newsletter.resources.classify import Topic

    return [Topic(name=t.name, keywords=tuple(t.keywords)) for t in settings.topics]
