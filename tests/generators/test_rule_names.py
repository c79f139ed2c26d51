"""No group of any profile's rule files holds two rules of one name and labels: vmalert refuses such a group
(Prometheus loads it), so the local stack on VictoriaMetrics would not start in a profile whose windows
coincide (the compressed profile's canary windows include the one the canary's serving check counts over)."""

from __future__ import annotations

from collections import Counter

import pytest

from monitoring.artifacts import rule_files
from monitoring.genesis import DEFINITIONS


@pytest.mark.parametrize("profile", [p.name for p in DEFINITIONS.profiles])
def test_no_group_has_two_rules_of_one_name_and_labels(profile: str) -> None:
    for name, data in rule_files(DEFINITIONS.with_profile(profile)).items():
        for group in data["groups"]:
            seen = Counter((r.get("record") or r.get("alert"), repr(sorted((r.get("labels") or {}).items())))
                           for r in group["rules"])
            assert not [k for k, n in seen.items() if n > 1], f"{profile} {name} {group['name']}"
