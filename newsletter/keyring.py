"""The secret keys that sign links: created once, kept in the data folder, rotated without loss.

Every unsubscribe, preferences and confirmation link carries a signature, and
those links live in mailboxes for years.  Two rules follow:

* Every process must sign with the same key.  Without an explicit
  ``secret_key`` the first process to need one creates a random key in
  ``{var_dir}/secret_keys`` (mode 0600, created atomically so two processes
  starting at once agree) and every later process reads it, so ``make demo``,
  ``campaign start`` and ``serve`` need no set-up and agree on the key.
* A key that signed mail must keep verifying.  The file holds one key per
  line, newest first; ``newsletter secret rotate`` puts a new key on top and
  keeps the old ones for verification.  An explicit ``secret_key`` (from
  ``NEWSLETTER_SECRET_KEY`` or ``newsletter.toml``) signs, and every key in the
  file, plus ``previous_secret_keys``, still verifies, so switching to an
  explicit key never breaks links already sent.

The shipped placeholder key is refused outside ``debug``: anyone could forge
links with it.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from newsletter.errors import ConfigError

DEFAULT_SECRET = "dev-insecure-change-me"
KEY_FILE = "secret_keys"
MIN_LENGTH = 16


@dataclass(frozen=True, slots=True)
class Keyring:
    """The key that signs and every key that still verifies (the signing key last)."""

    current: str
    previous: tuple[str, ...] = ()
    source: str = "settings"

    @property
    def verifying(self) -> list[str]:
        """Oldest first, the signing key last: the order itsdangerous expects."""
        return [*reversed(self.previous), self.current]


def key_file(var_dir: Path) -> Path:
    return var_dir / KEY_FILE


def read_keys(path: Path) -> list[str]:
    """The keys in a key file, newest first; a malformed file is a ``ConfigError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the secret key file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the secret key file is not text") from None
    keys = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not keys:
        raise ConfigError(f"{path}: the secret key file holds no key")
    short = [n for n, k in enumerate(keys, 1) if len(k) < MIN_LENGTH]
    if short:
        raise ConfigError(f"{path}: key {short[0]} is shorter than {MIN_LENGTH} characters")
    return keys


def _write_new(path: Path, keys: list[str]) -> bool:
    """Write ``keys`` to ``path`` only if it does not exist yet; False if another process won."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(_file_text(keys))
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # atomic, and fails if the file appeared meanwhile
        except FileExistsError:
            return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _file_text(keys: list[str]) -> str:
    header = (
        "# newsletter signing keys, newest first: the first signs, all verify.\n"
        "# Keep this file secret and never delete a line while mail signed with it\n"
        "# may still be read (see 'newsletter secret rotate').\n"
    )
    return header + "".join(f"{key}\n" for key in keys)


def new_key() -> str:
    return secrets.token_urlsafe(32)


def ensure_key_file(var_dir: Path) -> list[str]:
    """The key file's keys, creating the file with a fresh random key on first use."""
    path = key_file(var_dir)
    if path.exists():
        return read_keys(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_new(path, [new_key()])
    except OSError as exc:
        raise ConfigError(f"cannot create the secret key file {path}: {exc.strerror}") from None
    return read_keys(path)


def rotate(var_dir: Path) -> Keyring:
    """Put a new signing key on top of the key file, keeping the old ones for verification."""
    path = key_file(var_dir)
    keys = [new_key(), *ensure_key_file(var_dir)]
    tmp = path.with_name(f".{path.name}.rotate.{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(_file_text(keys))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot rotate the secret key in {path}: {exc.strerror}") from None
    return Keyring(current=keys[0], previous=tuple(keys[1:]), source=str(path))


def resolve(explicit: str | None, previous: list[str], var_dir: Path, *, debug: bool) -> Keyring:
    """The keyring for these settings (see the module docstring for the rules)."""
    if explicit is not None:
        if explicit == DEFAULT_SECRET and not debug:
            raise ConfigError(
                "secret_key is the shipped placeholder; remove it (a key is then created "
                f"in {key_file(var_dir)}) or set your own, or set debug = true"
            )
        path = key_file(var_dir)
        kept = read_keys(path) if path.exists() else []
        rest = [k for k in [*previous, *kept] if k != explicit]
        return Keyring(current=explicit, previous=tuple(dict.fromkeys(rest)), source="settings")
    keys = ensure_key_file(var_dir)
    rest = [k for k in [*keys[1:], *previous] if k != keys[0]]
    return Keyring(
        current=keys[0], previous=tuple(dict.fromkeys(rest)), source=str(key_file(var_dir))
    )
