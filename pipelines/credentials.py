"""Secrets that need not be on the command line (where ``ps`` and shell history show them).

=====================  ==================================  =========================================
secret                 file flag (first line of the file)  environment variable
=====================  ==================================  =========================================
web view token         ``--http-token-file FILE``          ``TRACKSTREAM_HTTP_TOKEN``
Redis password         ``--redis-password-file FILE``      ``TRACKSTREAM_REDIS_PASSWORD``
MQTT password          ``--mqtt-password-file FILE``       ``TRACKSTREAM_MQTT_PASSWORD``
PostgreSQL password    ``--db-password-file FILE``         ``TRACKSTREAM_DB_PASSWORD``
=====================  ==================================  =========================================

A file wins over the flag or config value, which wins over the environment. A password goes into its URL
(``--redis``/``--state redis://``, ``--mqtt``, ``--db postgresql://``) only when that URL holds none.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, MutableMapping, Optional
from urllib.parse import quote

from pipelines.errors import UserError
from pipelines.secrets import url_password
from pipelines.store.config import is_postgres

HTTP_TOKEN_ENV = "TRACKSTREAM_HTTP_TOKEN"
REDIS_PASSWORD_ENV = "TRACKSTREAM_REDIS_PASSWORD"
MQTT_PASSWORD_ENV = "TRACKSTREAM_MQTT_PASSWORD"
DB_PASSWORD_ENV = "TRACKSTREAM_DB_PASSWORD"
DB_PASSWORD_HELP = (f"read the PostgreSQL password from FILE (or set {DB_PASSWORD_ENV}); used when the --db "
                    "postgresql:// URL holds none")
DB_PASSWORD_NEEDS = "needs --db postgresql://... (the server it logs in to)"   # `run` and `events` refuse it alone
REDIS_STATE = ("redis://", "rediss://")   # a --state in Redis, which --redis-password-file logs in to


def read_secret(value: Optional[str], env: str, file: Optional[str], what: str) -> Optional[str]:
    """A secret from (first given wins) the ``file`` (its first line), the command line/config ``value``,
    or the environment variable ``env``. ``OSError`` on the file becomes a ``UserError`` naming it."""
    if file:
        try:
            text = Path(file).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {what} from {file}: {getattr(exc, 'strerror', None) or exc}") from None
        first = text.strip().splitlines()[0].strip() if text.strip() else ""
        if not first:
            raise UserError(f"{what} file {file} is empty")
        return first
    if value:
        return value
    return os.environ.get(env) or None


def add_secret_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--*-file`` flags of ``run``."""
    parser.add_argument("--http-token-file", metavar="FILE",
                        help=f"read the web view's token from FILE (or set {HTTP_TOKEN_ENV})")
    parser.add_argument("--redis-password-file", metavar="FILE",
                        help=f"read the Redis password from FILE (or set {REDIS_PASSWORD_ENV}); used when the "
                             "--redis or --state redis:// URL holds none")
    parser.add_argument("--mqtt-password-file", metavar="FILE",
                        help=f"read the MQTT password from FILE (or set {MQTT_PASSWORD_ENV}); used when the "
                             "--mqtt URL holds none")
    parser.add_argument("--db-password-file", metavar="FILE", help=DB_PASSWORD_HELP)


def _holds_password(url: str) -> bool:
    """Whether ``url``'s user-info has a password (``user:password@``). Not ``url_password``, which, to mask
    it, also takes a user-info without ``:`` for one: ``mqtt://cam@host`` holds a user name, no password."""
    if url_password(url) is None:
        return False
    return ":" in url.split("://", 1)[1].rsplit("@", 1)[0]   # the user-info: up to the last @, as url_password


def with_password(url: str, password: Optional[str]) -> str:
    """``url`` with ``password`` (percent-encoded) as its user-info password, unless it already has one."""
    if not password or _holds_password(url) or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    user = ""
    if "@" in rest.split("/", 1)[0]:
        user, rest = rest.split("@", 1)
    return f"{scheme}://{user}:{quote(password, safe='')}@{rest}"


def fill_secrets(data: MutableMapping[str, Any], args: Optional[argparse.Namespace] = None) -> None:
    """Put the secrets from files (``args``' ``--*-file`` flags) and the environment into the raw config
    ``data`` (before validation)."""
    http = data.get("http")
    given = http.get("token") if isinstance(http, dict) else None
    token = read_secret(given, HTTP_TOKEN_ENV, getattr(args, "http_token_file", None), "the web view token")
    if token and (http is None or isinstance(http, dict)):
        data.setdefault("http", {})["token"] = token
    for section, key, env, flag, what in (
            ("redis", "url", REDIS_PASSWORD_ENV, "redis_password_file", "the Redis password"),
            ("state", "dir", REDIS_PASSWORD_ENV, "redis_password_file", "the Redis password"),
            ("mqtt", "url", MQTT_PASSWORD_ENV, "mqtt_password_file", "the MQTT password"),
            ("store", "db", DB_PASSWORD_ENV, "db_password_file", "the database password")):
        part = data.get(section)
        url = part.get(key) if isinstance(part, dict) else None
        if not isinstance(part, dict) or not isinstance(url, str) or "://" not in url:
            continue
        if section == "state" and not url.startswith(REDIS_STATE):
            continue
        if section == "store" and not is_postgres(url):   # a SQLite file has no password
            continue
        part[key] = _filled(url, env, getattr(args, flag, None), what)


def db_with_password(db: str, file: Optional[str]) -> str:
    """``db`` (``trackstream events --db``) with the password of ``--db-password-file`` or
    ``TRACKSTREAM_DB_PASSWORD`` when it is a PostgreSQL URL that holds none."""
    return _filled(db, DB_PASSWORD_ENV, file, "the database password") if is_postgres(db) else db


def _filled(url: str, env: str, file: Optional[str], what: str) -> str:
    """``url`` with the secret of ``file`` or ``env`` as its password, when it holds none (the file is then not
    read at all)."""
    if _holds_password(url):
        return url
    return with_password(url, read_secret(None, env, file, what))
