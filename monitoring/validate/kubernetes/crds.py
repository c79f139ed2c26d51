"""kubernetes-crds: each custom resource against its operator's own CRD schema, read from MONITORING_REF
(reference data, like the Grafana schemas: without it the family is skipped, saying so)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from monitoring.definitions.model import Definitions
from monitoring.validate.kubernetes.resources import CRD_SCHEMAS, CRDS, is_custom, kind_of, located, resources
from monitoring.validate.schema import REFERENCE, reference_root
from monitoring.validate.tools import Skipped


@cache
def _crd_schema(folder: Path, name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((folder / name).read_text(encoding="utf-8"))
    return schema


def check_crd(resource: Any, folder: Path, where: str) -> list[str]:
    """`resource` against the CRD schema of its kind; a kind no operator serves is a problem."""
    schema = CRDS.get(kind_of(resource))
    if schema is None:
        return [f"{where}: no CRD serves apiVersion {kind_of(resource)[0]!r} kind {kind_of(resource)[1]!r} "
                f"(known: {', '.join(f'{a} {k}' for a, k in CRDS)})"]
    validator = jsonschema.Draft202012Validator(_crd_schema(folder, schema))
    return [f"{where}: {'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message} ({schema})"
            for error in sorted(validator.iter_errors(resource), key=lambda e: list(map(str, e.absolute_path)))]


def check_crds(root: Path, definitions: Definitions) -> list[str]:
    reference = reference_root()
    if reference is None:
        raise Skipped(f"the operators' CRD schemas are not at hand: set {REFERENCE} to a folder holding "
                      f"{CRD_SCHEMAS}/ (prometheus-operator's, grafana-operator's, Argo Rollouts' and Flagger's)")
    folder = reference / CRD_SCHEMAS
    missing = [name for name in CRDS.values() if not (folder / name).is_file()]
    if missing:
        raise Skipped(f"CRD schemas not found in {folder}: {', '.join(missing)} (set {REFERENCE})")
    return [problem for path, resource in resources(root).items() if is_custom(resource)
            for problem in check_crd(resource, folder, located(path, resource))]
