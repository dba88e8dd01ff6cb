"""Mail that comes back (DSNs, ARF reports) as real servers write it, for tests and bench."""

from __future__ import annotations

from email.utils import formatdate


def dsn(
    to: str,
    recipient: str,
    *,
    status: str = "5.1.1",
    action: str = "failed",
    diagnostic: str = "550 5.1.1 User unknown",
    original_id: str | None = None,
    date: str | None = None,
    nonce: str = "1",
) -> bytes:
    """An RFC 3464 report as Postfix sends it, addressed to ``to`` (a VERP address)."""
    headers = f"Message-ID: {original_id}\n" if original_id else ""
    return f"""Return-Path: <>
Delivered-To: {to}
Date: {date or formatdate(usegmt=True)}
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: {to}
Message-ID: <dsn-{nonce}@mx.example.net>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY-{nonce}"

--BOUNDARY-{nonce}
Content-Type: text/plain; charset=us-ascii

<{recipient}>: host mx.example.net said: {diagnostic}

--BOUNDARY-{nonce}
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--BOUNDARY-{nonce}
Content-Type: text/rfc822-headers

From: News <news@example.org>
To: {recipient}
Subject: Issue 42
{headers}
--BOUNDARY-{nonce}--
""".replace("\n", "\r\n").encode()


def arf(to: str, recipient: str, *, return_path: str | None = None, nonce: str = "1") -> bytes:
    """An RFC 5965 feedback report (the Yahoo/AOL form) sent to ``to`` (the FBL address)."""
    original = f"Return-Path: <{return_path}>\n" if return_path else ""
    return f"""From: Feedback Loop <fbl@isp.example>
To: {to}
Subject: Abuse report
Date: {formatdate(usegmt=True)}
Message-ID: <arf-{nonce}@isp.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="ARF-{nonce}"

--ARF-{nonce}
Content-Type: text/plain

This is an email abuse report.

--ARF-{nonce}
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: Example-FBL/1.0
Version: 1
Original-Rcpt-To: {recipient}

--ARF-{nonce}
Content-Type: message/rfc822

{original}From: News <news@example.org>
To: {recipient}
Subject: Issue 42

Hi

--ARF-{nonce}--
""".replace("\n", "\r\n").encode()
