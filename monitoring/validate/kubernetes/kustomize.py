"""kubernetes-kustomize: `kubectl kustomize kubernetes` builds the whole set (skipped without kubectl), every
resource in the definitions' namespace."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from monitoring.artifacts import KUBERNETES
from monitoring.definitions.model import Definitions
from monitoring.validate.kubernetes.resources import kind_of, resources
from monitoring.validate.tools import Skipped


class _KustomizeLoader(yaml.SafeLoader):
    """kustomize writes YAML 1.2, where a plain `=` (a matcher's matchType) is a string; YAML 1.1 readers take it
    for the `value` tag."""


def _plain(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    """The `value` tag read back as the plain string it is."""
    assert isinstance(node, yaml.ScalarNode)  # the tag only resolves on plain scalars
    return loader.construct_scalar(node)


_KustomizeLoader.add_constructor("tag:yaml.org,2002:value", _plain)


def check_kustomize(root: Path, definitions: Definitions) -> list[str]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise Skipped("kubectl not found on PATH: `kubectl kustomize kubernetes` cannot be tried")
    completed = subprocess.run([kubectl, "kustomize", str(root / KUBERNETES)], capture_output=True, text=True,
                               timeout=120)
    if completed.returncode != 0:
        return [f"{KUBERNETES}: kubectl kustomize failed:\n{(completed.stdout + completed.stderr).strip()}"]
    built = [doc for doc in yaml.load_all(completed.stdout, Loader=_KustomizeLoader) if doc]
    problems = []
    if len(built) != len(resources(root)):
        problems.append(f"{KUBERNETES}: kubectl kustomize built {len(built)} resources, kustomization.yaml lists "
                        f"{len(resources(root))}")
    namespace = definitions.kubernetes.namespace
    problems += [f"{KUBERNETES}: {kind_of(doc)[1]} {doc['metadata'].get('name')!r}: built in namespace "
                 f"{doc['metadata'].get('namespace')!r}, not {namespace!r}"
                 for doc in built if doc["metadata"].get("namespace") != namespace]
    return problems
