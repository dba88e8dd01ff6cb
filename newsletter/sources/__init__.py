"""Sources that fill the library: RSS/Atom feeds, listing pages and sitemaps, polled on a schedule.

``registry`` is what editors register, ``poll`` fetches (conditional GET
through ``newsletter.fetching``) and drops duplicates, ``content`` turns an
answer into records with the library's own parsers, and ``inbox`` is where new
items wait to be accepted into the library or rejected.
"""
