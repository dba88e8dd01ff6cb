"""IP addresses reduced to their network before they are stored, so none is kept in clear.

An imported opt-in IP is evidence of where a sign-up came from; the /24 (IPv4)
or /48 (IPv6) network keeps that evidence (the provider, the region) without
identifying one household's connection.
"""

from __future__ import annotations

import ipaddress

IPV4_PREFIX = 24
IPV6_PREFIX = 48


def masked_ip(raw: str | None) -> str | None:
    """``203.0.113.7`` -> ``203.0.113.0/24``; ``None`` for a blank or unreadable value."""
    text = (raw or "").strip()
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
