"""``newsletter dns check`` against a real DNS server (dnslib on 127.0.0.1), never the internet."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from newsletter.config import Settings
from newsletter.deliverability import dkim as dk
from newsletter.deliverability import spf
from newsletter.deliverability.dnscheck import Finding, aligned, check_dns
from newsletter.deliverability.resolver import Resolver
from newsletter.testing.dns_server import LocalDns
from tests.test_cli import run_here as run

RELAY_IP = "203.0.113.5"
DOMAIN = "example.org"


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    dk.write_key(dk.key_path(folder, DOMAIN, "s1"), dk.generate("rsa"))
    return folder


@pytest.fixture
def local_dns() -> Iterator[LocalDns]:
    with LocalDns() as server:
        yield server


@pytest.fixture
def good(local_dns: LocalDns, key_dir: Path, make_settings: Callable[..., Settings]) -> Settings:
    """Every record right: the baseline each problem test breaks one thing of."""
    settings = make_settings(
        transport="smtp",
        smtp_host="relay.example.net",
        dkim_selectors=["s1"],
        dkim_key_dir=key_dir,
        dns_resolver=local_dns.address,
        dns_timeout_seconds=1.0,
    )
    local_dns.add("relay.example.net", "A", RELAY_IP)
    local_dns.add(DOMAIN, "TXT", "v=spf1 a:relay.example.net include:_spf.example.org ~all")
    local_dns.add("_spf.example.org", "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    (key,) = dk.keys_from(settings)
    local_dns.add(key.name, "TXT", dk.txt_strings(key.txt_record()))
    local_dns.add(f"_dmarc.{DOMAIN}", "TXT", "v=DMARC1; p=quarantine; adkim=s")
    local_dns.add(DOMAIN, "MX", (10, "mx1.example.org"))
    return settings


def problems(findings: list[Finding]) -> dict[str, Finding]:
    return {f.check: f for f in findings if not f.ok}


def test_everything_right(good: Settings) -> None:
    findings = check_dns(good)
    assert problems(findings) == {}
    assert [f.check for f in findings] == ["SPF", "DKIM", "DMARC", "MX"]
    assert "permits 203.0.113.5 (2 lookups)" in findings[0].message
    assert findings[2].message == "p=quarantine; DKIM and SPF aligned with example.org"


def test_cli_ok_and_json(good: Settings, tmp_path: Path, local_dns: LocalDns) -> None:
    env = _env(good, local_dns)
    result = run("dns", "check", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok ") == 4
    listed = json.loads(run("dns", "check", "--json", cwd=tmp_path, env=env).stdout)
    assert {row["check"] for row in listed} == {"SPF", "DKIM", "DMARC", "MX"}


def _env(settings: Settings, local_dns: LocalDns, **extra: str) -> dict[str, str]:
    return {
        "NEWSLETTER_TRANSPORT": "smtp",
        "NEWSLETTER_SMTP_HOST": settings.smtp_host,
        "NEWSLETTER_DKIM_SELECTORS": '["s1"]',
        "NEWSLETTER_DKIM_KEY_DIR": str(settings.dkim_key_path),
        "NEWSLETTER_DNS_RESOLVER": local_dns.address,
        "NEWSLETTER_DNS_TIMEOUT_SECONDS": "0.5",
        **extra,
    }


def test_cli_one_line_per_problem_exit_1(
    good: Settings, tmp_path: Path, local_dns: LocalDns
) -> None:
    local_dns.replace(DOMAIN, "TXT", "v=spf1 ip4:192.0.2.1 -all")
    local_dns.replace(f"_dmarc.{DOMAIN}", "TXT")
    local_dns.replace(DOMAIN, "MX")
    result = run("dns", "check", cwd=tmp_path, env=_env(good, local_dns))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    bad = [line for line in result.stdout.splitlines() if line.startswith("PROBLEM")]
    assert len(bad) == 3
    assert (
        f'PROBLEM SPF {DOMAIN}: does not permit {RELAY_IP} (fail); publish: {DOMAIN}. IN TXT "v=spf1 ip4:192.0.2.1 ip4:{RELAY_IP} -all"'
        in bad
    )
    assert any(line.startswith(f"PROBLEM DMARC _dmarc.{DOMAIN}: no DMARC record") and
               f'_dmarc.{DOMAIN}. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@{DOMAIN}"' in line
               for line in bad)  # fmt: skip
    assert any(
        f"MX {DOMAIN}: no MX record" in line and f"{DOMAIN}. IN MX 10 mail.{DOMAIN}." in line
        for line in bad
    )


def test_no_spf_record_gets_one_with_the_relay(good: Settings, local_dns: LocalDns) -> None:
    local_dns.replace(DOMAIN, "TXT")
    finding = problems(check_dns(good))["SPF"]
    assert finding.message == "no SPF record"
    assert finding.record == f'{DOMAIN}. IN TXT "v=spf1 ip4:{RELAY_IP} -all"'


def test_two_spf_records(good: Settings, local_dns: LocalDns) -> None:
    local_dns.add(DOMAIN, "TXT", "v=spf1 -all")
    assert "2 SPF records" in problems(check_dns(good))["SPF"].message


def test_too_many_lookups(good: Settings, local_dns: LocalDns) -> None:
    chain = " ".join(f"include:i{n}.example.org" for n in range(11))
    local_dns.replace(DOMAIN, "TXT", f"v=spf1 a:relay.example.net {chain} -all")
    for n in range(11):
        local_dns.add(f"i{n}.example.org", "TXT", "v=spf1 -all")
    finding = problems(check_dns(good))["SPF"]
    assert "needs 12 DNS lookups" in finding.message


def test_mx_mechanism_and_softfail(good: Settings, local_dns: LocalDns) -> None:
    local_dns.replace(DOMAIN, "TXT", "v=spf1 mx ~all")
    local_dns.add("mx1.example.org", "A", "198.51.100.7")
    finding = problems(check_dns(good))["SPF"]
    assert finding.message == f"does not permit {RELAY_IP} (softfail)"
    assert finding.record == f'{DOMAIN}. IN TXT "v=spf1 mx ip4:{RELAY_IP} ~all"'
    local_dns.add("mx1.example.org", "A", RELAY_IP)
    assert "SPF" not in problems(check_dns(good))


def test_redirect_and_cidr() -> None:
    with LocalDns() as server:
        server.add("a.example", "TXT", "v=spf1 redirect=b.example")
        server.add("b.example", "TXT", "v=spf1 ip4:203.0.113.0/28 ip6:2001:db8::/32 -all")
        report = spf.check(
            Resolver(server.address), "a.example", ["203.0.113.9", "203.0.113.99", "2001:db8::1"]
        )
    assert report.results == {"203.0.113.9": "pass", "203.0.113.99": "fail", "2001:db8::1": "pass"}
    assert report.lookups == 1


def test_loopback_relay_needs_sending_ips(
    good: Settings, local_dns: LocalDns, make_settings: Callable[..., Settings]
) -> None:
    local_settings = make_settings(**{**_overrides(good), "smtp_host": "127.0.0.1"})
    assert "set sending_ips" in problems(check_dns(local_settings))["SPF"].message
    fixed = make_settings(
        **{**_overrides(good), "smtp_host": "127.0.0.1", "sending_ips": [RELAY_IP]}
    )
    assert "SPF" not in problems(check_dns(fixed))


def _overrides(settings: Settings) -> dict[str, Any]:
    return {
        "transport": settings.transport,
        "smtp_host": settings.smtp_host,
        "dkim_selectors": settings.dkim_selectors,
        "dkim_key_dir": settings.dkim_key_dir,
        "dns_resolver": settings.dns_resolver,
        "dns_timeout_seconds": settings.dns_timeout_seconds,
    }


def test_dkim_missing_or_different_record(good: Settings, local_dns: LocalDns) -> None:
    (key,) = dk.keys_from(good)
    local_dns.replace(key.name, "TXT")
    finding = problems(check_dns(good))["DKIM"]
    assert finding.message == "no record" and finding.record == dk.zone_line(key)
    other = dk.DkimKey(DOMAIN, "s1", dk.generate("ed25519"))
    local_dns.replace(key.name, "TXT", other.txt_record())
    finding = problems(check_dns(good))["DKIM"]
    assert finding.message == "the published key is not the key in use"
    assert finding.record == dk.zone_line(key)
    local_dns.replace(key.name, "TXT", "v=DKIM1; k=rsa; p=")
    assert "revoked" in problems(check_dns(good))["DKIM"].message


def test_unsigned_smtp_is_a_problem(good: Settings, make_settings: Callable[..., Settings]) -> None:
    unsigned = make_settings(**{**_overrides(good), "dkim_selectors": []})
    found = problems(check_dns(unsigned))
    assert "not signed" in found["DKIM"].message and "dkim keygen" in found["DKIM"].message
    # DMARC still passes through aligned SPF.
    assert "DMARC" not in found


def test_dmarc_alignment(
    good: Settings, local_dns: LocalDns, make_settings: Callable[..., Settings], key_dir: Path
) -> None:
    """Signing as a parent domain aligns in relaxed mode only; SPF on a foreign bounce domain never."""
    dk.write_key(dk.key_path(key_dir, "news.example.org", "s1"), dk.generate("ed25519"), force=True)
    sub = make_settings(**{**_overrides(good), "from_email": "letters@news.example.org",
                           "bounce_domain": "bounces.example.net"})  # fmt: skip
    local_dns.add("bounces.example.net", "TXT", f"v=spf1 ip4:{RELAY_IP} -all")
    local_dns.add("bounces.example.net", "MX", (10, "mx.example.net"))
    (key,) = dk.keys_from(sub)
    local_dns.add(key.name, "TXT", key.txt_record())
    # _dmarc.news.example.org is absent: the parent's record applies, adkim=s
    local_dns.replace(f"_dmarc.{DOMAIN}", "TXT", "v=DMARC1; p=reject; adkim=s")
    assert "DMARC" not in problems(check_dns(sub))  # d=news.example.org = From domain
    parent_signing = make_settings(**{**_overrides(sub), "from_email": "letters@news.example.org",
                                      "bounce_domain": "bounces.example.net",
                                      "dkim_domain": DOMAIN})  # fmt: skip
    finding = problems(check_dns(parent_signing))["DMARC"]
    assert (
        "would fail DMARC" in finding.message
        and "dkim_domain = 'news.example.org'" in finding.message
    )
    local_dns.replace(f"_dmarc.{DOMAIN}", "TXT", "v=DMARC1; p=reject")
    assert "DMARC" not in problems(check_dns(parent_signing))


def test_alignment_rules() -> None:
    assert aligned("example.org", "news.example.org", strict=False)
    assert not aligned("example.org", "news.example.org", strict=True)
    assert not aligned("mail.example.org", "news.example.org", strict=False)
    assert aligned("Example.org.", "example.org", strict=True)


def test_dns_timeout_is_a_finding_not_a_crash(
    good: Settings, local_dns: LocalDns, tmp_path: Path
) -> None:
    local_dns.silent.add(DOMAIN)
    findings = check_dns(good)
    found = problems(findings)
    assert found["SPF"].message == f"could not check: DNS lookup of TXT {DOMAIN} timed out"
    result = run("dns", "check", cwd=tmp_path, env=_env(good, local_dns))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert any(
        "timed out" in line for line in result.stdout.splitlines() if line.startswith("PROBLEM")
    )


def test_sendgrid_wants_its_include(
    good: Settings, local_dns: LocalDns, make_settings: Callable[..., Settings]
) -> None:
    sendgrid = make_settings(**{**_overrides(good), "transport": "sendgrid"})
    finding = problems(check_dns(sendgrid))["SPF"]
    assert (
        finding.record
        == f'{DOMAIN}. IN TXT "v=spf1 a:relay.example.net include:_spf.example.org include:sendgrid.net ~all"'
    )


def test_admin_page_shows_each_record_and_its_fix(
    db: Any, settings: Settings, good: Settings, local_dns: LocalDns
) -> None:
    from tests.admin_helpers import signed_in_client

    local_dns.replace(f"_dmarc.{DOMAIN}", "TXT")
    client = signed_in_client(db, settings.model_copy(update=_overrides(good)), "admin")
    assert "/admin/settings/deliverability" in client.get("/admin/settings").text
    page = client.get("/admin/settings/deliverability")
    assert page.status_code == 200
    assert "1 problem" in page.text and "no DMARC record" in page.text
    assert (
        f"_dmarc.{DOMAIN}. IN TXT &#34;v=DMARC1; p=none; rua=mailto:dmarc-reports@{DOMAIN}&#34;"
        in page.text
    )
    assert "matches" in page.text and "s1._domainkey.example.org" in page.text
