"""``newsletter dns check``: the records a sender needs, looked up, each problem with its fix.

Four checks, in the order a receiver applies them:

* **SPF** at the envelope (bounce) domain: exactly one record, fewer than 10
  DNS lookups, and every relay's sending address permitted (``pass``);
* **DKIM**: each active selector's record is published and holds the public
  half of the key in use;
* **DMARC** at the From domain (or its parent): a record with a policy, and
  SPF or DKIM aligned with the From domain under its ``aspf``/``adkim`` mode;
* **MX** for the bounce domain, so bounces come back.

A problem carries the exact record to publish (zone-file syntax).  A lookup
that gets no answer is a problem too ("could not look up"), never a crash.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import TypeVar

from dkim.util import InvalidTagValueList, parse_tag_value

from newsletter.config import Settings
from newsletter.deliverability import spf
from newsletter.deliverability.dkim import DkimKey, keys_from, zone_line
from newsletter.deliverability.resolver import Resolver
from newsletter.errors import ConfigError, DnsLookupError

SENDGRID_SPF = "sendgrid.net"
T = TypeVar("T")


@dataclass(frozen=True)
class Finding:
    check: str  # SPF, DKIM, DMARC, MX
    name: str  # the DNS name looked at
    ok: bool
    message: str
    record: str | None = None  # the record to publish, in zone-file syntax

    def line(self) -> str:
        fix = f"; publish: {self.record}" if self.record else ""
        return f"{self.check} {self.name}: {self.message}{fix}"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _txt(name: str, value: str) -> str:
    return f'{name}. IN TXT "{value}"'


def aligned(domain: str, from_domain: str, *, strict: bool) -> bool:
    """DMARC identifier alignment (RFC 7489 3.1).

    Relaxed alignment wants the same organisational domain; without the public
    suffix list this accepts a domain and its subdomains, which is never wrong
    (siblings such as mail.example.org and news.example.org are refused).
    """
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if strict or domain == from_domain:
        return domain == from_domain
    return domain.endswith("." + from_domain) or from_domain.endswith("." + domain)


def relay_hosts(settings: Settings) -> list[str]:
    """The SMTP relays mail leaves through (their addresses are what SPF must allow)."""
    if settings.transport == "relays":
        return [relay.host for relay in settings.relays if relay.kind == "smtp"]
    return [settings.smtp_host]


def _uses_sendgrid(settings: Settings) -> bool:
    return settings.transport == "sendgrid" or (
        settings.transport == "relays" and any(r.kind == "sendgrid" for r in settings.relays)
    )


@dataclass
class _Context:
    settings: Settings
    resolver: Resolver
    findings: list[Finding]

    @property
    def from_domain(self) -> str:
        return self.settings.from_domain

    @property
    def bounce_domain(self) -> str:
        return self.settings.bounce_domain_name

    def add(self, *findings: Finding) -> None:
        self.findings.extend(findings)


def check_dns(settings: Settings, resolver: Resolver | None = None) -> list[Finding]:
    context = _Context(settings, resolver or Resolver.from_settings(settings), [])
    spf_passes = _guarded(context, "SPF", context.bounce_domain, _check_spf)
    dkim_keys = _guarded(context, "DKIM", settings.dkim_signing_domain, _check_dkim)
    _guarded(
        context,
        "DMARC",
        f"_dmarc.{context.from_domain}",
        lambda c: _check_dmarc(c, bool(spf_passes), dkim_keys or []),
    )
    _guarded(context, "MX", context.bounce_domain, _check_mx)
    return context.findings


def _guarded(context: _Context, check: str, name: str, run: Callable[[_Context], T]) -> T | None:
    """One check; a lookup without an answer or a bad key becomes a finding, not a crash."""
    try:
        return run(context)
    except (DnsLookupError, ConfigError) as exc:
        context.add(Finding(check, name, False, f"could not check: {exc}"))
        return None


# --- SPF -------------------------------------------------------------------------


def _sending_addresses(context: _Context) -> tuple[list[str], list[str]]:
    """(addresses, relays we could not place): configured, else the relays' own addresses."""
    if context.settings.sending_ips:
        return list(context.settings.sending_ips), []
    addresses: list[str] = []
    unknown: list[str] = []
    for host in relay_hosts(context.settings):
        try:
            found = [str(ipaddress.ip_address(host))]
        except ValueError:
            found = context.resolver.addresses(host)
        public = [a for a in found if _seen_by_receivers(a)]
        if public:
            addresses.extend(public)
        else:
            unknown.append(host)
    return addresses, unknown


_LOCAL_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


def _seen_by_receivers(address: str) -> bool:
    """Not loopback, link-local or RFC 1918/4193: a relay there sends from another address."""
    ip = ipaddress.ip_address(address)
    local = any(ip in network for network in _LOCAL_NETWORKS if network.version == ip.version)
    return not (ip.is_loopback or ip.is_link_local or ip.is_unspecified or local)


def _check_spf(context: _Context) -> bool:
    """True when every sending address passes SPF at the bounce domain."""
    domain = context.bounce_domain
    if _uses_sendgrid(context.settings) and not _check_spf_include(context, domain, SENDGRID_SPF):
        return False
    if not relay_hosts(context.settings):
        return True  # SendGrid only
    addresses, unknown = _sending_addresses(context)
    report = spf.check(context.resolver, domain, addresses)
    if len(report.records) > 1:
        context.add(
            Finding("SPF", domain, False, f"{len(report.records)} SPF records; receivers "
                    "treat that as an error (RFC 7208 3.2): merge them into one")
        )  # fmt: skip
        return False
    if unknown:
        context.add(
            Finding("SPF", domain, False, f"cannot tell which public address relay "
                    f"{', '.join(unknown)} sends from: set sending_ips")
        )  # fmt: skip
        if not addresses:
            return False
    record = report.record
    refused = [a for a in addresses if report.results.get(a) != "pass"]
    if record is None or refused:
        fixed = record
        for address in refused or addresses:
            fixed = spf.allowing(fixed, spf.address_term(address))
        what = "no SPF record" if record is None else (
            "does not permit " + ", ".join(f"{a} ({report.results.get(a)})" for a in refused)
        )  # fmt: skip
        context.add(Finding("SPF", domain, False, what, _txt(domain, fixed or "v=spf1 -all")))
        return False
    if report.lookups >= spf.LOOKUP_LIMIT:
        context.add(
            Finding("SPF", domain, False, f"needs {report.lookups} DNS lookups; more than "
                    f"{spf.LOOKUP_LIMIT} is an error at every receiver: replace includes "
                    "with ip4:/ip6: ranges")
        )  # fmt: skip
        return False
    context.add(
        Finding("SPF", domain, True, f"permits {', '.join(addresses)} ({report.lookups} lookups)")
    )
    return not unknown


def _check_spf_include(context: _Context, domain: str, include: str) -> bool:
    records = spf.spf_records(context.resolver, domain)
    record = records[0] if len(records) == 1 else None
    if record is not None and f"include:{include}" in record.lower().split():
        context.add(Finding("SPF", domain, True, f"includes {include}"))
        return True
    fixed = spf.allowing(record, f"include:{include}")
    context.add(Finding("SPF", domain, False, f"does not include {include}", _txt(domain, fixed)))
    return False


# --- DKIM ------------------------------------------------------------------------


def _check_dkim(context: _Context) -> list[DkimKey]:
    settings = context.settings
    if settings.transport == "sendgrid":
        context.add(
            Finding("DKIM", settings.dkim_signing_domain, True,
                    "SendGrid signs (its domain authentication records are checked there)")
        )  # fmt: skip
        return []
    if not settings.dkim_selectors:
        context.add(
            Finding("DKIM", settings.dkim_signing_domain, False, "mail is not signed: run "
                    "`newsletter dkim keygen --selector NAME`, publish the record it prints and "
                    "set dkim_selectors")
        )  # fmt: skip
        return []
    keys = keys_from(settings)
    for key in keys:
        context.add(_dkim_finding(context.resolver, key))
    return keys


def _dkim_finding(resolver: Resolver, key: DkimKey) -> Finding:
    published = resolver.txt(key.name)
    if not published:
        return Finding("DKIM", key.name, False, "no record", zone_line(key))
    try:
        tags = parse_tag_value(published[0].encode("utf-8"))
    except InvalidTagValueList as exc:
        return Finding("DKIM", key.name, False, f"unreadable record: {exc}", zone_line(key))
    public = b"".join(tags.get(b"p", b"").split()).decode("ascii", "replace")
    kind = tags.get(b"k", b"rsa").decode("ascii", "replace")
    expected = "rsa" if key.algorithm == "rsa-sha256" else "ed25519"
    if not public:
        return Finding("DKIM", key.name, False, "the key is revoked (empty p=)", zone_line(key))
    if public != key.public_value() or kind != expected:
        return Finding(
            "DKIM", key.name, False, "the published key is not the key in use", zone_line(key)
        )
    return Finding("DKIM", key.name, True, f"matches {key.path} ({key.algorithm}, {key.bits} bits)")


# --- DMARC -----------------------------------------------------------------------


def _parents(domain: str) -> Iterable[str]:
    labels = domain.split(".")
    for start in range(len(labels) - 1):
        yield ".".join(labels[start:])


def _check_dmarc(context: _Context, spf_passes: bool, keys: list[DkimKey]) -> None:
    from_domain = context.from_domain
    for domain in _parents(from_domain):
        records = [r for r in context.resolver.txt(f"_dmarc.{domain}") if _is_dmarc(r)]
        if records:
            _judge_dmarc(context, f"_dmarc.{domain}", records, spf_passes, keys)
            return
    proposal = f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{from_domain}"
    context.add(
        Finding("DMARC", f"_dmarc.{from_domain}", False, "no DMARC record (Gmail, Yahoo and "
                "Outlook refuse bulk mail without one)", _txt(f"_dmarc.{from_domain}", proposal))
    )  # fmt: skip


def _is_dmarc(record: str) -> bool:
    return record.replace(" ", "").lower().startswith("v=dmarc1")


def _judge_dmarc(
    context: _Context, name: str, records: list[str], spf_passes: bool, keys: list[DkimKey]
) -> None:
    if len(records) > 1:
        context.add(Finding("DMARC", name, False, f"{len(records)} DMARC records: keep one"))
        return
    tags = _dmarc_tags(records[0])
    if tags.get("p") not in ("none", "quarantine", "reject"):
        fixed = f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{context.from_domain}"
        context.add(Finding("DMARC", name, False, "no valid p= policy", _txt(name, fixed)))
        return
    from_domain = context.from_domain
    strict_dkim, strict_spf = tags.get("adkim") == "s", tags.get("aspf") == "s"
    dkim_ok = context.settings.transport == "sendgrid" or any(
        aligned(k.domain, from_domain, strict=strict_dkim) for k in keys
    )
    spf_ok = spf_passes and aligned(context.bounce_domain, from_domain, strict=strict_spf)
    if not (dkim_ok or spf_ok):
        signing = ", ".join(sorted({k.domain for k in keys})) or "none"
        context.add(
            Finding("DMARC", name, False, f"mail would fail DMARC: neither DKIM (d={signing}) "
                    f"nor SPF (envelope {context.bounce_domain}) aligns with From {from_domain}; "
                    f"sign with dkim_domain = {from_domain!r}")
        )  # fmt: skip
        return
    how = " and ".join(w for w, ok in (("DKIM", dkim_ok), ("SPF", spf_ok)) if ok)
    context.add(Finding("DMARC", name, True, f"p={tags['p']}; {how} aligned with {from_domain}"))


def _dmarc_tags(record: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = value.strip().lower()
    return tags


# --- MX --------------------------------------------------------------------------


def _check_mx(context: _Context) -> None:
    domain = context.bounce_domain
    found = context.resolver.mx(domain)
    usable = [host for _, host in found if host not in ("", ".")]
    if usable:
        context.add(Finding("MX", domain, True, f"bounces go to {', '.join(usable)}"))
        return
    target = next(
        (h for _, h in context.resolver.mx(context.from_domain) if h), f"mail.{context.from_domain}"
    )
    message = "a null MX: bounces cannot come back" if found else "no MX record: bounces are lost"
    context.add(Finding("MX", domain, False, message, f"{domain}. IN MX 10 {target}."))
