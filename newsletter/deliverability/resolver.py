"""DNS lookups through dnspython, against the system's resolvers or the one ``dns_resolver`` names.

"No such record" is an answer (an empty list); no answer at all (a timeout, a
refusing server) is a ``DnsLookupError``, so a check can tell "publish this
record" from "could not look".
"""

from __future__ import annotations

import dns.exception
import dns.name
import dns.resolver

from newsletter.config import Settings
from newsletter.errors import ConfigError, DnsLookupError


class Resolver:
    def __init__(self, address: str | None = None, *, timeout: float = 5.0) -> None:
        self.address = address
        self._resolver = dns.resolver.Resolver(configure=address is None)
        if address is not None:
            host, port = _host_port(address)
            try:
                self._resolver.nameservers = [host]
                self._resolver.port = int(port or 53)
            except ValueError as exc:
                raise ConfigError(f"dns_resolver {address!r} is not host[:port]: {exc}") from None
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> Resolver:
        return cls(settings.dns_resolver, timeout=settings.dns_timeout_seconds)

    def _query(self, name: str, rtype: str) -> list[dns.rdata.Rdata]:
        try:
            answer = self._resolver.resolve(name, rtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout:
            raise DnsLookupError(f"DNS lookup of {rtype} {name} timed out") from None
        except dns.resolver.NoNameservers as exc:
            raise DnsLookupError(f"DNS lookup of {rtype} {name} failed: {exc}") from None
        except dns.exception.DNSException as exc:
            raise DnsLookupError(f"DNS lookup of {rtype} {name} failed: {exc}") from None
        return list(answer)

    def txt(self, name: str) -> list[str]:
        """Each TXT record at ``name``, its character-strings joined (RFC 7208 3.3, RFC 6376)."""
        return [
            b"".join(rdata.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
            for rdata in self._query(name, "TXT")
        ]

    def mx(self, name: str) -> list[tuple[int, str]]:
        rows = [
            (int(r.preference), str(r.exchange).rstrip("."))  # type: ignore[attr-defined]
            for r in self._query(name, "MX")
        ]
        return sorted(rows)

    def addresses(self, name: str) -> list[str]:
        return [str(r) for rtype in ("A", "AAAA") for r in self._query(name, rtype)]

    def dkim_txt(self, name: bytes, timeout: float = 5) -> bytes | None:
        """dkimpy's ``dnsfunc``: the first TXT record at ``name``, as bytes."""
        records = self.txt(name.decode("ascii").rstrip("."))
        return records[0].encode("utf-8") if records else None


def _host_port(address: str) -> tuple[str, str]:
    """``1.2.3.4``, ``1.2.3.4:5353``, ``::1`` or ``[::1]:5353``."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, rest.removeprefix(":")
    if address.count(":") == 1:
        host, _, port = address.partition(":")
        return host, port
    return address, ""
