"""Resource importers: parse RSS/Atom/CSV/JSON/plain-text pages into records, then classify them."""
