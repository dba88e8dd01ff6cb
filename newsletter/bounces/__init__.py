"""Bounces and complaints without a provider: VERP addresses, one parser, three ways in.

``verp`` signs the envelope sender of every message so that a bounce names its
ledger row; ``parse`` reads DSNs, the non-standard bounces of real servers,
ARF complaint reports and auto-replies; ``apply`` stores each inbound mail once
and feeds what it found into the same ledger and events as the SendGrid
webhook (``tracking.events.ingest``); ``receiver`` (SMTP), ``mailbox`` (IMAP
and POP3) and ``files`` (.eml, mbox, Maildir) are the ways in; ``guard``
pauses a campaign whose complaint or hard-bounce rate passes its limit.
"""
