"""A coverage-guided fuzz run (atheris/libFuzzer) over the resource importers.

Run by ``test_fuzz_importers.py`` in a subprocess with a bounded number of runs:

    python -m tests.reliability.atheris_importers -runs=4000 -max_total_time=20 CORPUS

Every input is decoded as a file would be and handed to all four parsers; any
exception other than ``ImportFormatError`` is a crash (libFuzzer stops, writes
the input to ``crash-*`` and exits non-zero).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["newsletter.resources"]):
    from newsletter.errors import ImportFormatError
    from newsletter.resources import parsers

PARSERS = (parsers.parse_csv, parsers.parse_json, parsers.parse_feed, parsers.parse_text)


def one_input(data: bytes) -> None:
    try:
        text = parsers.decode_utf8(data, name="fuzz")
    except ImportFormatError:
        return
    for parse in PARSERS:
        try:
            result = parse(text, name="fuzz")
        except ImportFormatError:
            continue
        for record in result.records:
            assert record.title, record
            parsers.check_storable(record)


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
