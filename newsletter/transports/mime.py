"""RFC 5322 messages: CRLF line endings, quoted-printable parts, no header injection."""

from __future__ import annotations

from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

from newsletter.errors import ValidationError
from newsletter.message import RenderedEmail, check_header_value
from newsletter.transports.base import Sender

# 998 is RFC 5322's hard limit; folding at 78 would RFC 2047-encode a long List-Unsubscribe
# URL (no spaces to fold at), which mail clients then cannot use.  Bodies are QP anyway.
SMTP_POLICY = policy.SMTP.clone(max_line_length=998)


def _address(email: str, name: str | None) -> Address:
    check_header_value("address", email)
    if name:
        check_header_value("display name", name)
    local, _, domain = email.rpartition("@")
    if not local or not domain:
        raise ValidationError(f"not an email address: {email!r}")
    return Address(display_name=name or "", username=local, domain=domain)


def build_mime(
    rendered: RenderedEmail, *, sender: Sender, to: str, to_name: str | None, msg_id: str
) -> EmailMessage:
    """A multipart/alternative message (text first, HTML preferred) ready for SMTP or disk."""
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = _address(sender.email, sender.name)
    msg["To"] = _address(to, to_name)
    msg["Subject"] = check_header_value("subject", rendered.subject)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = check_header_value("Message-ID", msg_id)
    if sender.reply_to:
        msg["Reply-To"] = _address(sender.reply_to, None)
    for name, value in rendered.headers.items():
        msg[check_header_value("header name", name)] = check_header_value(name, value)
    msg.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


def to_bytes(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=SMTP_POLICY)
