"""Outgoing webhooks: ``registry`` (endpoints and their log), ``emit`` (the outbox),
``dispatcher`` (delivery, retries, replay) and ``signing`` (the signature scheme).

Emission points call ``emit`` (or one of its batch shapes) with the session
of the change, in one line; nothing on those paths waits for the network.
"""

from newsletter.automation.webhooks import events
from newsletter.automation.webhooks.outbox import Emission, emit, emit_many

__all__ = ["Emission", "emit", "emit_many", "events"]
