"""What the benchmark ran on: cores, memory, CPU, Python, SQLite and PostgreSQL versions, load."""

from __future__ import annotations

import os
import platform
import sqlite3
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import sqlalchemy as sa


def _meminfo_gb() -> float:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f}"


POSTGRES_SETTINGS = ("shared_buffers", "work_mem", "max_wal_size", "synchronous_commit", "jit")


def postgres_server(url: str) -> dict[str, str] | None:
    """The server's version and the settings that matter most here, or None if unreachable."""
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            found = {
                name: str(conn.execute(sa.text(f"SHOW {name}")).scalar())
                for name in ("server_version", *POSTGRES_SETTINGS)
            }
        engine.dispose()
    except sa.exc.OperationalError:
        return None
    found["server_version"] = found["server_version"].split()[0]
    return found


def describe(pg_url: str) -> dict[str, Any]:
    server = postgres_server(pg_url)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count() or 0,
        "ram_gb": round(_meminfo_gb(), 1),
        "cpu": _cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": server["server_version"] if server else None,
        "postgresql_settings": (
            ", ".join(f"{k}={server[k]}" for k in POSTGRES_SETTINGS) if server else None
        ),
        "sqlalchemy": version("sqlalchemy"),
        "psycopg": version("psycopg"),
        "load_start": load_average(),
    }
