"""What the resource and the subscriber CSV importers share about reading CSV."""

from __future__ import annotations

import csv


def csv_error_message(exc: csv.Error) -> str:
    """``csv.Error`` in plain words: its field-size one says nothing a person can act on."""
    if "field larger than field limit" in str(exc):
        return (
            f"a field is longer than {csv.field_size_limit():,} characters "
            "(the CSV field limit); is this really a CSV file?"
        )
    return f"malformed CSV: {exc}"
