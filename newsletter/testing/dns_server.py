"""A real DNS server (dnslib) on 127.0.0.1 serving records the test sets, UDP and TCP.

Why real DNS: the DNS check and DKIM verification resolve names through
dnspython exactly as in production (UDP, truncation, then TCP for a 2048-bit
key's long TXT record), so the tests point the resolver at a server on a
socket instead of patching the lookups.

    with LocalDns() as dns:
        dns.add("example.org", "TXT", "v=spf1 ip4:127.0.0.1 -all")
        dns.add("s1._domainkey.example.org", "TXT", record)   # split into 255-byte strings
        dns.silent.add("slow.example.org")                    # never answered: a timeout
        settings = make_settings(dns_resolver=dns.address)
"""

from __future__ import annotations

import socket
from collections import defaultdict
from types import TracebackType
from typing import Any, Self

from dnslib import MX, QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSError, DNSLogger, DNSServer


def _key(name: str) -> str:
    return name.lower().rstrip(".")


class _Resolver(BaseResolver):  # type: ignore[misc]
    def __init__(self, dns: LocalDns) -> None:
        self.dns = dns

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        qname = request.q.qname
        name, qtype = _key(str(qname)), QTYPE[request.q.qtype]
        self.dns.queries.append((name, qtype))
        if name in self.dns.silent:
            raise DNSError(f"{name}: no answer on purpose")  # the handler sends nothing
        if not any(n == name for n, _ in self.dns.records):
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for value in self.dns.records.get((name, qtype), []):
            reply.add_answer(RR(qname, getattr(QTYPE, qtype), rdata=_rdata(qtype, value), ttl=60))
        return reply


def _rdata(qtype: str, value: Any) -> Any:
    if qtype == "TXT":
        strings = value if isinstance(value, list) else _split(value)
        return TXT([s.encode("ascii") for s in strings])
    if qtype == "MX":
        preference, exchange = value
        return MX(exchange, preference)
    if qtype == "A":
        return A(value)
    raise ValueError(f"unsupported record type {qtype}")


def _split(text: str) -> list[str]:
    return [text[i : i + 255] for i in range(0, len(text), 255)] or [""]


class LocalDns:
    """Context manager: an authoritative-looking server for whatever names the test adds."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[Any]] = defaultdict(list)
        self.silent: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.host = "127.0.0.1"
        self.port = _free_port()
        resolver = _Resolver(self)
        logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
        self._servers = [
            DNSServer(resolver, port=self.port, address=self.host, logger=logger, tcp=tcp)
            for tcp in (False, True)
        ]

    @property
    def address(self) -> str:
        """``host:port``, the form of the ``dns_resolver`` setting."""
        return f"{self.host}:{self.port}"

    def add(self, name: str, rtype: str, value: Any) -> None:
        """TXT: a string (split into 255-byte strings) or a list of strings; MX: (pref, host)."""
        self.records[(_key(name), rtype.upper())].append(value)

    def replace(self, name: str, rtype: str, *values: Any) -> None:
        self.records[(_key(name), rtype.upper())] = list(values)

    def __enter__(self) -> Self:
        for server in self._servers:
            server.start_thread()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for server in self._servers:
            server.stop()
            server.server.server_close()


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port for the local DNS server")
