"""URLs given in definitions and on the command line (--prometheus, runbook links): http(s), with a host."""

from __future__ import annotations

from urllib.parse import urlsplit

from monitoring.definitions.errors import DefinitionError


def is_absolute_url(text: str) -> bool:
    parts = urlsplit(text)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def check_url(text: str, where: str) -> str:
    """`text` when it is an http(s) URL with a host (and a port, when it names one, from 1 to 65535);
    DefinitionError naming `where` and what is wrong otherwise."""
    reason = ""
    if not isinstance(text, str) or any(c.isspace() or not c.isprintable() for c in text):
        reason = "has a space or a control character"
    else:
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError:
            port = 0
        if parts.scheme not in ("http", "https"):
            reason = "is not an http(s) URL"
        elif not parts.hostname:
            reason = "names no host"
        elif port == 0:
            reason = "has a port that is not a number from 1 to 65535"
    if reason:
        raise DefinitionError(f"{where}: {text!r} {reason} (an http(s) URL with a host, e.g. http://127.0.0.1:9090)")
    return text
