"""Enough of SPF (RFC 7208) to answer two questions: may this address send, and how many lookups.

``check_host`` is evaluated for each sending address with ``ip4``, ``ip6``,
``a``, ``mx``, ``include``, ``redirect`` and ``all``; ``exists`` and ``ptr``
(and any macro) cannot be decided offline, so they never match here and
are reported.  The lookup count is the RFC's: every ``include``, ``a``,
``mx``, ``ptr``, ``exists`` and ``redirect`` anywhere in the tree, limit 10
(4.6.4); more is a permanent error at every receiver.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from newsletter.deliverability.resolver import Resolver

LOOKUP_LIMIT = 10
_LOOKUP_TERMS = ("include", "a", "mx", "ptr", "exists", "redirect")
_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_DEPTH = 12  # include/redirect nesting we follow (loops end here too)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class SpfReport:
    domain: str
    records: list[str]  # every v=spf1 record found at the domain (one is right)
    lookups: int = 0
    results: dict[str, str] = field(default_factory=dict)  # address -> pass/fail/softfail/...
    notes: list[str] = field(default_factory=list)

    @property
    def record(self) -> str | None:
        return self.records[0] if len(self.records) == 1 else None


def spf_records(resolver: Resolver, domain: str) -> list[str]:
    return [r for r in resolver.txt(domain) if r.lower().startswith("v=spf1") and _spf(r)]


def _spf(record: str) -> bool:
    return record.lower() == "v=spf1" or record[6:7] == " "


def check(resolver: Resolver, domain: str, addresses: list[str]) -> SpfReport:
    report = SpfReport(domain, spf_records(resolver, domain))
    if report.record is None:
        return report
    walker = _Walker(resolver, report)
    report.lookups = walker.count(domain, report.record, 0)
    for address in addresses:
        report.results[address] = walker.evaluate(domain, report.record, _ip(address), 0)
    return report


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(address)


class _Walker:
    def __init__(self, resolver: Resolver, report: SpfReport) -> None:
        self.resolver = resolver
        self.report = report

    def _record(self, domain: str) -> str | None:
        records = spf_records(self.resolver, domain)
        if len(records) != 1:
            self.report.notes.append(f"{domain} has {len(records)} SPF records (needs exactly one)")
            return None
        return records[0]

    def count(self, domain: str, record: str, depth: int) -> int:
        total = 0
        for term in record.split()[1:]:
            name, target = _name(term), _target(term, domain)
            if name not in _LOOKUP_TERMS:
                continue
            total += 1
            if name in ("include", "redirect") and depth < _DEPTH:
                nested = self._record(target)
                if nested is not None:
                    total += self.count(target, nested, depth + 1)
        return total

    def evaluate(self, domain: str, record: str, ip: ipaddress._BaseAddress, depth: int) -> str:
        """``check_host``'s result for ``ip``: pass, fail, softfail, neutral, none or permerror."""
        redirect: str | None = None
        for term in record.split()[1:]:
            qualifier = _QUALIFIERS.get(term[:1], "pass")
            name, target = _name(term), _target(term, domain)
            if "%" in term:
                self.report.notes.append(f"{term!r} uses a macro: not evaluated here")
                continue
            if name == "redirect":
                redirect = target
            elif name == "include":
                nested = self._record(target) if depth < _DEPTH else None
                if nested is not None and self.evaluate(target, nested, ip, depth + 1) == "pass":
                    return qualifier
            elif self._matches(name, term, target, ip):
                return qualifier
        if redirect is not None and depth < _DEPTH:
            nested = self._record(redirect)
            return "permerror" if nested is None else self.evaluate(redirect, nested, ip, depth + 1)
        return "neutral"

    def _matches(self, name: str, term: str, target: str, ip: ipaddress._BaseAddress) -> bool:
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            try:
                return ip in ipaddress.ip_network(term.split(":", 1)[1], strict=False)
            except ValueError:
                self.report.notes.append(f"{term!r} is not a valid network")
                return False
        if name in ("a", "mx"):
            hosts = [target] if name == "a" else [h for _, h in self.resolver.mx(target)]
            prefix = _prefix(term, ip.version)
            for host in hosts:
                for address in self.resolver.addresses(host):
                    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
                    if network.version == ip.version and ip in network:
                        return True
            return False
        if name in ("exists", "ptr"):
            self.report.notes.append(f"{term!r} cannot be checked offline")
        return False


def _name(term: str) -> str:
    bare = term.lstrip("+-~?")
    for sep in (":", "=", "/"):
        bare = bare.split(sep, 1)[0]
    return bare.lower()


def _target(term: str, domain: str) -> str:
    """The domain a term names (``a:host/24`` -> host), or the current domain."""
    bare = term.lstrip("+-~?")
    for sep in (":", "="):
        if sep in bare:
            return bare.split(sep, 1)[1].split("/", 1)[0].rstrip(".")
    return domain


def _prefix(term: str, version: int) -> int:
    """``a/24``, ``a:host/24//64``: the CIDR length for this address family."""
    parts = term.split("/")
    v4 = next((p for p in parts[1:2] if p), "32")
    v6 = parts[3] if len(parts) > 3 and parts[3] else "128"
    try:
        return int(v4 if version == 4 else v6)
    except ValueError:
        return 32 if version == 4 else 128


def address_term(address: str) -> str:
    return f"ip{_ip(address).version}:{address}"


def allowing(record: str | None, mechanism: str) -> str:
    """The record with ``mechanism`` added before its final ``all`` or ``redirect``."""
    if record is None:
        return f"v=spf1 {mechanism} -all"
    terms = record.split()
    index = next(
        (i for i, term in enumerate(terms) if _name(term) in ("all", "redirect")), len(terms)
    )
    return " ".join([*terms[:index], mechanism, *terms[index:]])
