"""Apply: push the configuration to the running servers through their provisioning APIs, plan first.

What is pushed is exactly what was validated: the definitions are rendered into a temporary tree, every
validation family runs on it, and the targets are built from the files read back from it (bundle.py).
A plan never shows a secret (redact.py).

Targets come from the environment; a target whose URL is not set is skipped with one line saying so.
With nothing set, apply targets the local stack that `make up` started, with the targets of its engine
(on VictoriaMetrics: vmalert for the rule files, victoria-metrics for prometheus.yml).
"""
