"""The sending engine: campaigns, the per-recipient ledger, batches and workers.

``engine`` orchestrates and never touches SQL or HTTP: it talks to a ``Store``
(``sqlstore.SqlStore`` in production) and a ``Messenger`` (``newsletter.transports``).
"""
