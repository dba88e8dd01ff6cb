"""DKIM (RFC 6376, RFC 8463): keys, their DNS records, and a signer for the final bytes.

Signing happens once per message, after the transport has the message's wire
bytes (``Signer.sign``), so the SMTP fast path and the outbox sign exactly what
they send.  The work is split the way a campaign needs it: the keys are parsed,
the ``h=`` list fixed and the canonicalisation chosen once per process; per
message there is one body hash (shared by every signature on it), the relaxed
canonicalisation of a dozen header lines and one signature per key.

dkimpy is the reference: its canonicalisation, header selection and folding
are used as they are, and every ``Signer`` proves itself when built by having
``dkim.verify`` check a probe message against the key's own DNS record.  Only
the private-key operation is not dkimpy's: dkimpy parses the PEM key and does
the RSA arithmetic in Python on every call (about 8 ms per message), where
OpenSSL through ``cryptography`` takes about 0.25 ms with the key parsed once.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils
from dkim.canonicalization import CanonicalizationPolicy

from newsletter.config import Settings, is_dns_name
from newsletter.errors import ConfigError, ValidationError

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

RSA_BITS = 2048
MIN_RSA_BITS = 1024  # RFC 8301: verifiers refuse less
# What RFC 6376 5.4.1 recommends signing, plus the two headers RFC 8058 requires signed.
SIGNED_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "reply-to",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
)
# RFC 6376 8.15: a name listed once more than it occurs stops anyone adding another
# instance (a second From, a forged List-Unsubscribe) without breaking the signature.
# Each of these occurs at most once in our messages, so each is listed twice; an absent
# Reply-To listed twice means none can be added.
H_TAG = SIGNED_HEADERS + SIGNED_HEADERS
CANONICALIZATION = b"relaxed/simple"  # dkimpy's default: headers relaxed, body byte-exact
_HEADERS_END = b"\r\n\r\n"


@dataclass(frozen=True)
class DkimKey:
    """One selector's private key, loaded once."""

    domain: str
    selector: str
    private: PrivateKey
    path: Path | None = None

    @property
    def algorithm(self) -> Algorithm:
        return "rsa-sha256" if isinstance(self.private, rsa.RSAPrivateKey) else "ed25519-sha256"

    @property
    def name(self) -> str:
        """The DNS name the TXT record lives at."""
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def bits(self) -> int:
        return self.private.key_size if isinstance(self.private, rsa.RSAPrivateKey) else 256

    def public_value(self) -> str:
        """The ``p=`` value: SubjectPublicKeyInfo (RSA) or the raw 32 bytes (Ed25519, RFC 8463)."""
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            der = public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        else:
            der = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(der).decode("ascii")

    def txt_record(self) -> str:
        kind = "rsa" if self.algorithm == "rsa-sha256" else "ed25519"
        return f"v=DKIM1; k={kind}; p={self.public_value()}"

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign the SHA-256 of the canonical headers (RFC 6376 3.7; RFC 8463 for Ed25519)."""
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        return self.private.sign(digest)


# --- keys on disk ----------------------------------------------------------------


def check_selector(selector: str) -> str:
    if not is_dns_name(selector):
        raise ValidationError(f"selector {selector!r} is not a DNS name (letters, digits, hyphens)")
    return selector


def key_path(key_dir: Path, domain: str, selector: str) -> Path:
    return key_dir / domain / f"{selector}.pem"


def generate(algorithm: Literal["rsa", "ed25519"] = "rsa", bits: int = RSA_BITS) -> PrivateKey:
    if algorithm == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if bits < RSA_BITS:
        raise ValidationError(f"RSA keys for DKIM should have at least {RSA_BITS} bits, not {bits}")
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def write_key(path: Path, private: PrivateKey, *, force: bool = False) -> None:
    """Write the key as PKCS#8 PEM, readable by its owner only (mode 0600 from the start)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise ValidationError(
            f"{path} already exists: pick a new selector to rotate keys (or --force)"
        ) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.chmod(path, 0o600)  # O_CREAT's mode is masked by the umask, and --force keeps the old mode


def load_key(path: Path, *, domain: str, selector: str) -> DkimKey:
    """The key for one selector; a missing, unreadable or unusable file is a ``ConfigError``."""
    where = f"DKIM key for selector {selector!r} of {domain} ({path})"
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{where} does not exist: run `newsletter dkim keygen --domain {domain} "
            f"--selector {selector}`"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read: {exc.strerror or exc}") from None
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"{where} is not an unencrypted PEM private key: {exc}") from None
    if isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < MIN_RSA_BITS:
            raise ConfigError(f"{where} has {private.key_size} bits; receivers refuse under 1024")
    elif not isinstance(private, ed25519.Ed25519PrivateKey):
        raise ConfigError(f"{where} is neither an RSA nor an Ed25519 key")
    return DkimKey(domain=domain, selector=selector, private=private, path=path)


def txt_strings(record: str, size: int = 255) -> list[str]:
    """The record as DNS character-strings: at most 255 bytes each (RFC 1035 3.3)."""
    return [record[start : start + size] for start in range(0, len(record), size)] or [""]


def zone_line(key: DkimKey) -> str:
    """The record in zone-file syntax, split into strings the way DNS needs it."""
    strings = " ".join(f'"{part}"' for part in txt_strings(key.txt_record()))
    return f"{key.name}. IN TXT ( {strings} )"


# --- signing ---------------------------------------------------------------------


class Signer:
    """Adds one DKIM-Signature per key to a message's final bytes.

    With two keys (an RSA and an Ed25519 one, or an old and a new selector
    while rotating) every message carries both signatures; a verifier needs
    only one to pass.  Thread-safe: it keeps no per-message state.
    """

    def __init__(
        self,
        keys: Sequence[DkimKey],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not keys:
            raise ConfigError("DKIM signing needs at least one key (dkim_selectors)")
        self.keys = tuple(keys)
        self.clock = clock
        self._policy = CanonicalizationPolicy.from_c_value(CANONICALIZATION)
        self._h = tuple(name.encode("ascii") for name in H_TAG)
        self._wanted = frozenset(self._h)
        self._templates: dict[str, _SignatureTemplate] = {}
        self._prove()

    def sign(self, message: bytes) -> bytes:
        """``DKIM-Signature: ...`` lines (one per key) prepended to ``message``."""
        head, sep, body = message.partition(_HEADERS_END)
        if not sep:
            raise ValidationError("cannot DKIM-sign a message without a header/body separator")
        headers = self._signed_headers(head)
        body_hash = base64.b64encode(hashlib.sha256(self._policy.canonicalize_body(body)).digest())
        stamp = str(int(self.clock())).encode("ascii")
        lines = [self._signature(key, headers, body_hash, stamp) for key in self.keys]
        return b"".join(lines) + message

    def _signed_headers(self, head: bytes) -> bytes:
        """What the signature hashes of the message's headers: the ``h=`` fields, canonical.

        dkimpy parses, canonicalises and selects them (``rfc822_parse``,
        ``Relaxed``, ``select_headers``).  For what the transports write (one
        line per field, single spaces, each signed field once) that comes down
        to ``name.lower() ":" value.strip() CRLF`` in ``h=`` order, done here
        directly; anything else goes dkimpy's way.
        """
        fast = self._plain_headers(head)
        if fast is not None:
            return fast
        parsed, _ = dkim.rfc822_parse(head + _HEADERS_END)
        chosen = [(name, value) for name, value in parsed if name.lower() in self._wanted]
        canonical = self._policy.canonicalize_headers(chosen)
        return b"".join(n + b":" + v for n, v in dkim.select_headers(canonical, self._h))

    def _plain_headers(self, head: bytes) -> bytes | None:
        found: dict[bytes, bytes] = {}
        for line in head.split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if not colon or not name or b"\t" in line or b"  " in line or b" " in name:
                return None  # a folded, tabbed or unusual line: dkimpy's way
            key = name.lower()
            if key in self._wanted:
                if key in found:
                    return None  # a repeated signed field: select_headers' order matters
                found[key] = key + b":" + value.strip() + b"\r\n"
        return b"".join(found[name] for name in self._h[: len(SIGNED_HEADERS)] if name in found)

    def _signature(self, key: DkimKey, headers: bytes, body_hash: bytes, stamp: bytes) -> bytes:
        """dkimpy's ``DomainSigner.gen_header``: fields, folding and hashing, from a template.

        The value without ``b=`` is folded and canonicalised once per key with
        placeholders as long as ``t=`` and ``bh=`` always are (folding breaks
        only at spaces, which neither holds), so per message they are replaced.
        """
        template = self._templates.get(key.selector)
        if template is None or len(stamp) != len(_STAMP) or len(body_hash) != len(_BODY_HASH):
            template = _SignatureTemplate(key, self._h, self._policy)
            if len(stamp) == len(_STAMP) and len(body_hash) == len(_BODY_HASH):
                self._templates[key.selector] = template
        hashed = template.hashed.replace(_STAMP, stamp).replace(_BODY_HASH, body_hash)
        signature = key.sign_digest(hashlib.sha256(headers + hashed).digest())
        fields = template.fields(stamp, body_hash)
        fields.append((b"b", base64.b64encode(signature)))
        signed = b"; ".join(b"=".join(field) for field in fields) + b"\r\n"
        folded: bytes = dkim.fold(signed, namelen=len(_SIGNATURE_NAME))
        return _SIGNATURE_NAME + b": " + folded

    def _prove(self) -> None:
        """Sign a probe and have dkimpy verify it against each key's own record."""
        probe = (
            b"From: Probe <probe@" + self.keys[0].domain.encode("ascii") + b">\r\n"
            b"To: someone@example.org\r\nReply-To: editor@example.org\r\nSubject: DKIM probe\r\n"
            b"Date: Fri, 03 Apr 2026 13:00:00 -0000\r\nMessage-ID: <probe@example.org>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"List-Id: Probe <probe.example.org>\r\nList-Unsubscribe: <https://example.org/u/x>\r\n"
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nHello\r\n\r\n"
        )
        signed = self.sign(probe)
        records = {key.name: key.txt_record().encode("ascii") for key in self.keys}

        def own(name: bytes, timeout: float = 5) -> bytes:
            return records.get(name.decode("ascii").rstrip("."), b"")

        for index, key in enumerate(self.keys):
            if not dkim.DKIM(signed).verify(idx=index, dnsfunc=own):
                raise ConfigError(f"DKIM self-check failed for {key.name}: the signature is wrong")


_SIGNATURE_NAME = b"DKIM-Signature"
_STAMP = b"#" * 10  # t=: ten digits until the year 2286
_BODY_HASH = b"@" * 44  # bh=: base64 of a SHA-256


class _SignatureTemplate:
    """One key's DKIM-Signature fields, folded and canonicalised with placeholders."""

    def __init__(self, key: DkimKey, h: tuple[bytes, ...], policy: CanonicalizationPolicy) -> None:
        self._head = [
            (b"v", b"1"),
            (b"a", key.algorithm.encode("ascii")),
            (b"c", CANONICALIZATION),
            (b"d", key.domain.encode("ascii")),
            (b"s", key.selector.encode("ascii")),
        ]
        self._h = (b"h", b" : ".join(h))  # spaces, so folding never splits a name
        fields = [*self.fields(_STAMP, _BODY_HASH), (b"b", b"0" * 60)]  # b= on its own line
        value = b"; ".join(b"=".join(field) for field in fields)
        value = dkim.RE_BTAG.sub(b"\\1", dkim.fold(value, namelen=len(_SIGNATURE_NAME)))
        ((name, canonical),) = policy.canonicalize_headers([(_SIGNATURE_NAME, b" " + value)])
        self.hashed = name + b":" + canonical.rstrip()  # hashed without its CRLF (RFC 6376 3.7)

    def fields(self, stamp: bytes, body_hash: bytes) -> list[tuple[bytes, bytes]]:
        return [*self._head, (b"t", stamp), self._h, (b"bh", body_hash)]


def keys_from(settings: Settings) -> list[DkimKey]:
    """The keys of every active selector (``dkim_selectors``), for ``d=`` the signing domain."""
    domain = settings.dkim_signing_domain
    return [
        load_key(key_path(settings.dkim_key_path, domain, s), domain=domain, selector=s)
        for s in settings.dkim_selectors
    ]


def signer_from(settings: Settings) -> Signer:
    return Signer(keys_from(settings))
