"""The locks that keep a second run off the files a run writes, with a few open files rather than one per output:
an archive of thousands of videos writes thousands of outputs, and a descriptor held for each stopped it under a
limit of 1024 open files.

A run holds a *token* in each folder it writes into (at most ``MOST_TOKENS``; a claim in a further folder names
the token of the folder nearest it): ``.trackstream-run-<pid>-<nonce>.lock``, locked (``fcntl.flock``) for as long
as the run lives. Each output and state file gets a *claim* beside it, ``.<name>.lock``, holding the run's PID and
the path of its token relative to the claim; the claim is written under a brief ``flock`` of its own and not kept
open. A second run that would write the file reads the claim and tries the token's lock: held, the claim's run is
alive, and the second run refuses, naming the file and the PID. The kernel drops a token's lock when its process
ends in any way (``kill -9`` too), so a claim is never stale: the next run finds the token unlocked, takes the
claim over and removes the dead run's token. At its end a run removes its claims and its tokens (one left by a
killed run is harmless).

A claim file an older trackstream holds locked for its whole run (there the lock is the claim) is refused too;
an older trackstream does not read the claims of this one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path
from typing import Optional

from pipelines.errors import OutputError

TOKEN_PREFIX = ".trackstream-run-"
MOST_TOKENS = 8      # tokens (open files) a run holds at most; claims in further folders name the nearest one
BUSY_WAIT_S = 1.0   # how long a claim may stay locked by another run writing or checking it before it is refused


def _flock(fd: int, wait_s: float = BUSY_WAIT_S) -> bool:
    """An exclusive ``flock`` on ``fd``, tried for ``wait_s`` (another run holds a claim only while it reads and
    writes it). False when still held then; ``OSError`` when the file system has no locks."""
    import fcntl

    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def _alive(token: Path) -> bool:
    """Whether the run that made ``token`` still lives (it holds the token's lock); a dead run's token is removed."""
    try:
        fd = os.open(token, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not _flock(fd, 0.0):
            return True
        with contextlib.suppress(OSError):
            token.unlink()
        return False
    except OSError:   # no locks on this file system: nothing to tell a live run by
        return False
    finally:
        os.close(fd)


def _holder(fd: int, folder: Path) -> tuple[Optional[int], Optional[Path]]:
    """(PID, token) a claim file in ``folder`` names; an older trackstream's claim names its PID only."""
    try:
        lines = os.pread(fd, 4096, 0).decode("utf-8", "replace").splitlines()
    except OSError:
        return None, None
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
    where = lines[1].strip() if len(lines) > 1 else ""
    if not Path(where).name.startswith(TOKEN_PREFIX):
        return pid, None
    return pid, Path(os.path.normpath(folder / where))


def _common(a: Path, b: Path) -> int:
    """How many leading path parts ``a`` and ``b`` share."""
    return len(os.path.commonpath([a, b]).split(os.sep)) if a.is_absolute() == b.is_absolute() else 0


class Claims:
    """The claims and tokens of one run (see module docstring); ``release()`` removes them."""

    def __init__(self, most_tokens: int = MOST_TOKENS) -> None:
        self._tokens: dict[Path, int] = {}                # token -> its locked descriptor
        self._claimed: list[tuple[Path, Path]] = []       # (claim file, the token it names)
        self._name = f"{TOKEN_PREFIX}{os.getpid()}-{secrets.token_hex(4)}.lock"
        self._most = most_tokens

    def _token(self, folder: Path) -> Optional[Path]:
        """This run's token for claims in ``folder``: its own (made and locked at the first claim there) while this
        run holds fewer than ``most_tokens``, else the one of the folder sharing the longest path with it (claims
        in one folder per source stay within a bounded number of open files). None when the file system has no
        locks; ``OSError`` when the folder cannot hold the token."""
        token = folder / self._name
        if token in self._tokens:
            return token
        if len(self._tokens) >= self._most:
            return max(self._tokens, key=lambda held: _common(held.parent, folder))
        import fcntl

        fd = os.open(token, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # the name is this run's: only "no locks" fails
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                token.unlink()
            return None
        os.write(fd, f"{os.getpid()}\n".encode())
        self._tokens[token] = fd
        return token

    def claim(self, lock: Path, what: str, path: Path) -> bool:
        """Claim ``path`` (``what`` names it in the refusal) with the claim file ``lock``. ``OutputError`` when
        another live run holds it; False when the file system has no locks (the run goes on unlocked); ``OSError``
        when the folder cannot hold the files (the caller decides)."""
        folder = lock.parent
        token = self._token(folder)
        if token is None:
            return False
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                try:
                    got = _flock(fd)
                except OSError:
                    return False
                if not got:   # an older trackstream holds its claim locked for its whole run
                    self._refuse(what, path, _holder(fd, folder)[0])
                try:
                    same = os.fstat(fd).st_ino == os.stat(lock).st_ino
                except FileNotFoundError:
                    same = False
                if not same:   # removed by the run that held it just before us: claim the new file
                    continue
                pid, other = _holder(fd, folder)
                if other is not None and other != token and _alive(other):
                    self._refuse(what, path, pid)
                os.ftruncate(fd, 0)   # the token by its path from the claim: the same on every machine mounting both
                os.pwrite(fd, f"{os.getpid()}\n{os.path.relpath(token, folder)}\n".encode(), 0)
                self._claimed.append((lock, token))
                return True
            finally:
                os.close(fd)

    @staticmethod
    def _refuse(what: str, path: Path, pid: Optional[int]) -> None:
        by = f" (PID {pid})" if pid else ""
        raise OutputError(f"{what} {path} is being written by another trackstream run{by}: wait for it to end or "
                          "choose another path")

    def release(self) -> None:
        """Remove this run's claims (each under its lock, and only while it still names this run), then its
        tokens: a run that reads a claim meanwhile still finds it alive, never a claim half removed."""
        for lock, token in reversed(self._claimed):
            with contextlib.suppress(OSError):
                fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
                try:
                    if _flock(fd) and os.fstat(fd).st_ino == os.stat(lock).st_ino \
                            and _holder(fd, lock.parent)[1] == token:
                        lock.unlink()
                finally:
                    os.close(fd)
        self._claimed.clear()
        for token, fd in self._tokens.items():
            with contextlib.suppress(OSError):
                token.unlink()
            with contextlib.suppress(OSError):
                os.close(fd)
        self._tokens.clear()

    @property
    def descriptors(self) -> int:
        """Files this run holds open for its locks: one per folder it writes into, at most ``most_tokens``."""
        return len(self._tokens)


__all__ = ["Claims"]
