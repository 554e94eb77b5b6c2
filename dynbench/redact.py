"""Credentials never leave the process: every text a record keeps of the command line or
the environment, and every error message, passes through :func:`redact` first.

A store is shared (a team's PostgreSQL server, a SQLite file mailed to a colleague, a merge
of both), so a password typed into ``--db`` would otherwise reach every reader of every
record, every export and every report. What is hidden: the password of a URL
(``scheme://user:PASSWORD@host``), the value of any ``NAME=value`` or ``--name value`` whose
name says it holds a secret (``PGPASSWORD=``, ``--token``, ``api_key=``, libpq's
``password=``), and a bearer token. The rest of the text stays as it was, so a redacted
command line still says what was run.
"""

from __future__ import annotations

import re

MASK = "***"

# user:password@ after a URL scheme; the password runs to the last '@' before the host
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][\w+.-]*://[^\s:/@\"']*:)(?P<secret>[^\s\"']*)@")
_SECRET_NAME = r"[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)[\w.-]*"
# NAME=value or NAME: value whose name says it holds a secret (PGPASSWORD=, api_key: ...)
_NAMED_SECRET = re.compile(
    rf"(?P<head>\b{_SECRET_NAME}\s*[=:]\s*)(?P<secret>[^\s\"',&;]+)", re.IGNORECASE
)
# an option that takes a secret as its next word (--password VALUE, --token VALUE)
_SECRET_OPTION = re.compile(rf"(?P<head>(?<!\S)--?{_SECRET_NAME}\s+)(?P<secret>[^\s\"']+)", re.I)
_BEARER = re.compile(r"(?P<head>\bBearer\s+)(?P<secret>[\w.~+/=-]+)", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every credential replaced by ``***`` (see the module's docstring)."""
    for pattern in (_URL_PASSWORD, _NAMED_SECRET, _SECRET_OPTION, _BEARER):
        text = pattern.sub(_masked, text)
    return text


def _masked(match: re.Match) -> str:
    tail = "@" if match.group(0).endswith("@") else ""
    return f"{match.group('head')}{MASK}{tail}"
