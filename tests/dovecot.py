"""A real Dovecot (IMAP + POP3) for the bounce-mailbox tests, started as an unprivileged process.

Debian's ``dovecot-imapd``/``dovecot-pop3d`` (Makefile ``system-deps``) with a
config written to a temporary folder: free ports on 127.0.0.1, plain text
login, one passwd-file user and a Maildir.  Dovecot's login processes refuse
to run as root, so when the tests run as root (CI) the whole server runs as
``nobody`` in a folder that user owns.  Messages go in through IMAP APPEND,
as any mail client would put them there.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

USER, PASSWORD = "bounces", "mailbox-secret"

CONFIG = """\
protocols = imap pop3
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
mail_location = maildir:{root}/mail/%u/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
service auth {{
  user = $default_internal_user
}}
service auth-worker {{
  user = $default_internal_user
}}
"""


@dataclass
class Dovecot:
    host: str
    imap_port: int
    pop3_port: int
    user: str = USER
    password: str = PASSWORD

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        with self._imap() as imap:
            status, _ = imap.append(folder, None, None, raw)
            assert status == "OK"

    def create(self, folder: str) -> None:
        with self._imap() as imap:
            imap.create(folder)

    def count(self, folder: str = "INBOX") -> int:
        with self._imap() as imap:
            status, data = imap.select(folder, readonly=True)
            assert status == "OK", data
            return int(data[0] or 0)

    def clear(self, folder: str) -> None:
        """Delete every message of a folder (if it exists)."""
        with self._imap() as imap:
            status, data = imap.select(folder)
            if status == "OK" and int(data[0] or 0):
                imap.store("1:*", "+FLAGS", r"(\Deleted)")
                imap.expunge()

    @contextmanager
    def _imap(self) -> Iterator[imaplib.IMAP4]:
        imap = imaplib.IMAP4(self.host, self.imap_port, timeout=10)
        try:
            imap.login(self.user, self.password)
            yield imap
        finally:
            imap.logout()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dovecot exited: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(64).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("dovecot did not start listening within 15 s")


@contextmanager
def running_dovecot(tmp_path: Path) -> Iterator[Dovecot]:
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(binary).exists() or not Path("/usr/lib/dovecot/imap").exists():
        if os.environ.get("CI"):
            pytest.fail("dovecot-imapd is required in CI (make system-deps)")
        pytest.skip("dovecot-imapd is not installed (make system-deps)")
    as_root = os.geteuid() == 0
    account = pwd.getpwnam("nobody") if as_root else pwd.getpwuid(os.getuid())
    # as root the folder must be nobody's, and tmp_path's parents are root-only (0700)
    root = Path(tempfile.mkdtemp(prefix="dovecot-")) if as_root else tmp_path / "dovecot"
    for sub in ("run", "state", "mail"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    ports = {"imap_port": _free_port(), "pop3_port": _free_port()}
    config = CONFIG.format(
        root=root, user=account.pw_name, group=grp.getgrgid(account.pw_gid).gr_name,
        uid=account.pw_uid, gid=account.pw_gid, **ports,
    )  # fmt: skip
    (root / "dovecot.conf").write_text(config)
    if as_root:
        for path in [root, *root.rglob("*")]:
            os.chown(path, account.pw_uid, account.pw_gid)

    def drop_privileges() -> None:
        if as_root:
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)

    process = subprocess.Popen(
        [binary, "-F", "-c", str(root / "dovecot.conf")],
        preexec_fn=drop_privileges,  # a test fixture: no threads to deadlock yet
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(ports["imap_port"], process, root / "dovecot.log")
        yield Dovecot("127.0.0.1", **ports)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if as_root:
            shutil.rmtree(root, ignore_errors=True)
