"""The Kubernetes resources in kubernetes/, in four families:

- kubernetes: what each resource carries is what the plain files carry (the rule files' groups, the dashboards'
  JSON, alertmanager.yml's routes, receivers and inhibitions, the canary's bounds and counters), the token only
  as a Secret reference, every resource listed in kustomization.yaml, which alone sets the namespace;
- kubernetes-crds: each custom resource against its operator's own CRD schema, read from MONITORING_REF
  (reference data, like the Grafana schemas: without it the family is skipped, saying so);
- kubernetes-builtin: Deployment, Service, ConfigMap and PersistentVolumeClaim against the Kubernetes API's
  schemas in strict mode, with the kubernetes-validate package (the `kubernetes` extra);
- kubernetes-kustomize: `kubectl kustomize kubernetes` builds the whole set (skipped without kubectl).
"""

from __future__ import annotations

from monitoring.validate.kubernetes.builtin import check_builtin, check_builtin_resource
from monitoring.validate.kubernetes.consistency import check
from monitoring.validate.kubernetes.crds import check_crd, check_crds
from monitoring.validate.kubernetes.kustomize import check_kustomize
from monitoring.validate.kubernetes.resources import resources

__all__ = ["check", "check_builtin", "check_builtin_resource", "check_crd", "check_crds", "check_kustomize",
           "resources"]
