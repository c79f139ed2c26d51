"""Secrets out of every plan: values of secret-looking keys and the private parts of notification URLs
are replaced before anything is compared for display, on both sides of every diff.

A key is secret-looking when its name holds password, secret, token, key or credentials, unless it ends
in `_file` (a path to a secret, which is what generated config holds, is not a secret). A `url` (or
`*_url`) inside a `*_configs` entry or Alertmanager's `global` section keeps only its scheme, host and
port: webhook and chat URLs carry tokens in their path and query. A user:password@ part is removed from
every URL-looking string.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

REDACTED = "<redacted>"
_SECRET_KEY = re.compile(r"password|secret|token|key|credentials", re.IGNORECASE)
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key)) and not key.lower().endswith("_file")


def _url_key(key: str) -> bool:
    return key == "url" or key.endswith("_url")


def _origin(url: str) -> str:
    """The scheme, host and port of `url`; what follows them is replaced."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return REDACTED
    if not parts.scheme or not parts.hostname:
        return REDACTED
    origin = f"{parts.scheme}://{parts.hostname}{port}"
    return origin if url.rstrip("/") == origin else f"{origin}/{REDACTED}"


def redact(value: Any, notifying: bool = False) -> Any:
    """A copy of `value` (parsed YAML or JSON) with its secrets replaced. `notifying` is true inside a
    `*_configs` entry or a `global` section, where URLs carry tokens."""
    if isinstance(value, dict):
        shown = {}
        for key, item in value.items():
            name = str(key)
            if secret_key(name) and item not in (None, "", [], {}):
                shown[key] = REDACTED
            elif notifying and _url_key(name) and isinstance(item, str):
                shown[key] = _origin(item)
            else:
                shown[key] = redact(item, notifying or name.endswith("_configs") or name == "global")
        return shown
    if isinstance(value, list):
        return [redact(item, notifying) for item in value]
    if isinstance(value, str):
        return _USERINFO.sub(f"{REDACTED}@", value)
    return value


def secrets(value: Any) -> set[str]:
    """Every string that `redact` hides in `value`, to scrub from messages that quote a server."""
    found: set[str] = set()

    def walk(item: Any, notifying: bool) -> None:
        if isinstance(item, dict):
            for key, inner in item.items():
                name = str(key)
                if secret_key(name) or (notifying and _url_key(name)):
                    found.update(s for s in _strings(inner) if len(s) >= 4)
                else:
                    walk(inner, notifying or name.endswith("_configs") or name == "global")
        elif isinstance(item, list):
            for inner in item:
                walk(inner, notifying)

    walk(value, False)
    return found


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [str(value)] if value is not None else []


def scrub(text: str, hidden: set[str]) -> str:
    """`text` with every hidden string (longest first) and every URL's user:password@ replaced."""
    for secret in sorted(hidden, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _USERINFO.sub(f"{REDACTED}@", text)
