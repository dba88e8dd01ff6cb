"""The scheduler process: a thin entry point (the logic lives in ``newsletter.scheduling``)."""

from __future__ import annotations

import sys


def main() -> int:
    from newsletter.cli import main as cli_main

    cli_main(["scheduler", "run", *sys.argv[1:]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
