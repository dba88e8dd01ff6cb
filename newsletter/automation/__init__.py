"""Automation and integration: signed outgoing webhooks and scoped API tokens.

``webhooks`` turns changes (a confirmation, a bounce, a finished campaign)
into signed HTTP deliveries through an outbox written in the change's own
transaction; ``tokens`` issues and checks the API tokens of ``/api/v1``.
"""
