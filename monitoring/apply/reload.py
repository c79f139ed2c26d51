"""Servers that read files from a config folder and reload on POST /-/reload: Prometheus, Alertmanager,
vmalert and victoria-metrics.

The files come from a validated Bundle. Apply writes them atomically, reloads, then verifies through the
API that the reload after the write succeeded and the server runs what was written. If anything fails
from the write on (a refused reload, a failed verification, a malformed answer, any exception) it puts
the previous files back, reloads again, and fails naming what, in one line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from monitoring.apply.http import ApplyError, Client, MalformedAnswer, public
from monitoring.apply.plan import UNCHANGED, Change, yaml_change
from monitoring.apply.redact import scrub, secrets
from monitoring.engines import Engine
from monitoring.engines.base import Observe, Verify
from monitoring.files import write_all

if TYPE_CHECKING:
    from monitoring.apply.bundle import Bundle


@dataclass
class ReloadTarget:
    name: str
    client: Client
    folder: Path
    files: dict[str, str]
    verify: Verify
    before: Observe | None = None  # reads, before the write, what an asynchronous reload is judged against

    def _current(self) -> dict[str, str | None]:
        return {name: (self.folder / name).read_text(encoding="utf-8") if (self.folder / name).is_file() else None
                for name in self.files}

    def plan(self) -> list[Change]:
        current = self._current()
        return [yaml_change(self.name, name, current[name], text) for name, text in self.files.items()]

    def apply(self, changes: list[Change]) -> None:
        if all(c.action == UNCHANGED for c in changes):
            return
        previous = self._current()
        hidden = self._secrets(previous)
        if self.before:
            self.before(self.client)
        written_at = time.time()
        try:
            write_all(self.folder, self.files)
            self._reload()
            problems = self.verify(self.client, written_at)
            if problems:
                raise ApplyError(f"{self.name} at {public(self.client.base)}: verification after reload failed: "
                                 + "; ".join(problems))
        except BaseException as failure:
            self._restore(previous, failure, hidden)
            if not isinstance(failure, Exception):
                raise
            kind = type(failure) if isinstance(failure, ApplyError) else ApplyError
            reason = str(failure) if isinstance(failure, ApplyError) else f"{type(failure).__name__}: {failure}"
            raise kind(scrub(f"{reason}; the previous files were restored and reloaded", hidden)) from failure

    def _secrets(self, previous: dict[str, str | None]) -> set[str]:
        found: set[str] = set()
        for text in (*previous.values(), *self.files.values()):
            try:
                found |= secrets(yaml.safe_load(text or ""))
            except yaml.YAMLError:
                continue
        return found

    def _reload(self) -> None:
        """POST /-/reload; an HTTP error answer is the server refusing the files, final at once. (Prometheus
        and Alertmanager answer 200, victoria-metrics 204.)"""
        answer = self.client.request("POST", "/-/reload", retry_answers=False)
        if answer.status_code not in (200, 204):
            body = " ".join(answer.text.split())[:500]
            raise ApplyError(f"{self.name} at {public(self.client.base)}: reload refused: HTTP {answer.status_code} "
                             f"{body}")

    def _restore(self, previous: dict[str, str | None], failure: BaseException, hidden: set[str]) -> None:
        write_all(self.folder, {name: text for name, text in previous.items() if text is not None})
        for name, text in previous.items():
            if text is None:
                (self.folder / name).unlink(missing_ok=True)
        try:
            self._reload()
        except ApplyError as error:
            kind = MalformedAnswer if isinstance(failure, MalformedAnswer) else ApplyError
            raise kind(scrub(f"{failure}; {self.name}: restored the previous files but the reload failed too: "
                             f"{error}", hidden)) from error


Build = Callable[["Bundle", Client, Path], ReloadTarget]


def engine_target(engine: Engine, target: str) -> Build:
    """How apply builds `target`, one of the engine's servers (Engine.apply_targets), from a validated Bundle: the
    files and the check the engine gives (Engine.pushed)."""

    def build(bundle: Bundle, client: Client, folder: Path) -> ReloadTarget:
        pushed = engine.pushed(target, bundle.definitions, bundle.prometheus)
        return ReloadTarget(target, client, folder, dict(pushed.files), pushed.verify, pushed.before)

    return build
