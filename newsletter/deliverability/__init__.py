"""Deliverability for self-hosted senders: DKIM, the DNS check, pacing, warm-up and relays.

Each concern is a module of its own behind the existing seams: ``dkim`` signs
the final bytes the SMTP and outbox transports write (one ``Signer`` handed to
them by ``transports.build_messenger``); ``dns`` checks the records a sender
must publish; ``relays`` fails over between several relays behind one
``Messenger``; ``pacing`` and ``warmup`` decide how much may go to whom and
when, for the sending engine; ``engagement`` says who is most engaged.
"""
