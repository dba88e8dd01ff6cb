"""Subscribers: addresses, signed links, the suppression list and the consent-keeping service.

Entry points (web, CLI, sender) use ``service``; ``addresses``, ``tokens``,
``links`` and ``suppression`` are the small contracts the sender relies on.
"""
