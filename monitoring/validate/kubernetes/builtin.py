"""kubernetes-builtin: Deployment, Service, ConfigMap and PersistentVolumeClaim against the Kubernetes API's
schemas in strict mode, with the kubernetes-validate package (the `kubernetes` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monitoring.definitions.model import Definitions
from monitoring.extras import MissingExtra, need
from monitoring.validate.kubernetes.resources import KUBERNETES_VERSION, is_custom, located, resources
from monitoring.validate.tools import Skipped


def check_builtin_resource(resource: Any, where: str) -> list[str]:
    """A built-in kind against the Kubernetes API's schema, strict (no unknown field), with kubernetes-validate."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{where}: {'/'.join(map(str, error.path)) or '(root)'}: {error.message} "
                f"(Kubernetes {error.version}, strict)"]
    except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as error:
        return [f"{where}: {error.message}"]
    except (KeyError, TypeError) as error:
        return [f"{where}: not a Kubernetes resource ({error!r} missing or wrong)"]
    return []


def check_builtin(root: Path, definitions: Definitions) -> list[str]:
    try:
        need("kubernetes_validate", "kubernetes", "checking the built-in kinds (kubernetes-validate)")
    except MissingExtra as error:
        raise Skipped(str(error)) from None
    return [problem for path, resource in resources(root).items() if not is_custom(resource)
            for problem in check_builtin_resource(resource, located(path, resource))]
