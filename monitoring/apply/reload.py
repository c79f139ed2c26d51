"""Servers that read files from a config folder and reload on POST /-/reload: Prometheus, Alertmanager.

Apply validates the new files with the server's own tool first, writes them atomically, reloads, then
verifies through the API that the reload after the write succeeded and the server runs what was
written. If any of that fails it puts the previous files back, reloads again, and fails naming what.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monitoring.apply.http import ApplyError, Client
from monitoring.apply.plan import CHANGE, CREATE, UNCHANGED, Change, text_diff
from monitoring.files import write_all

Check = Callable[[Path], list[str]]
Verify = Callable[[Client, float], list[str]]


@dataclass
class ReloadTarget:
    name: str
    client: Client
    folder: Path
    files: dict[str, str]
    check: Check
    verify: Verify

    def plan(self) -> list[Change]:
        changes = []
        for name, text in self.files.items():
            path = self.folder / name
            if not path.is_file():
                changes.append(Change(self.name, name, CREATE, text_diff("", text, name)))
            elif (old := path.read_text(encoding="utf-8")) != text:
                changes.append(Change(self.name, name, CHANGE, text_diff(old, text, name)))
            else:
                changes.append(Change(self.name, name, UNCHANGED))
        return changes

    def validate(self) -> None:
        with tempfile.TemporaryDirectory(prefix=f"monitoring-apply-{self.name}-") as scratch:
            write_all(Path(scratch), self.files)
            problems = self.check(Path(scratch))
        if problems:
            raise ApplyError(f"{self.name}: the generated files are invalid, nothing was written:\n"
                             + "\n".join(problems))

    def apply(self, changes: list[Change]) -> None:
        if all(c.action == UNCHANGED for c in changes):
            return
        self.validate()
        previous = {name: (self.folder / name).read_text(encoding="utf-8") if (self.folder / name).is_file()
                    else None for name in self.files}
        written_at = time.time()
        write_all(self.folder, self.files)
        try:
            self._reload()
            problems = self.verify(self.client, written_at)
            if problems:
                raise ApplyError(f"{self.name} at {self.client.base}: verification after reload failed: "
                                 + "; ".join(problems))
        except ApplyError as failure:
            self._restore(previous)
            raise ApplyError(f"{failure}\n{self.name}: the previous files were restored and reloaded") from failure

    def _reload(self) -> None:
        answer = self.client.request("POST", "/-/reload")
        if answer.status_code != 200:
            raise ApplyError(f"{self.name} at {self.client.base}: reload failed: HTTP {answer.status_code} "
                             f"{answer.text.strip()[:500]}")

    def _restore(self, previous: dict[str, str | None]) -> None:
        write_all(self.folder, {name: text for name, text in previous.items() if text is not None})
        for name, text in previous.items():
            if text is None:
                (self.folder / name).unlink(missing_ok=True)
        try:
            self._reload()
        except ApplyError as error:
            raise ApplyError(f"{self.name}: restored the previous files but the reload failed too: {error}") \
                from error
