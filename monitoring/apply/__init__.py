"""Apply: push the configuration to the running servers through their provisioning APIs, plan first.

Targets come from the environment; a target whose URL is not set is skipped with one line saying so.
With nothing set, apply targets the local stack that `make up` started.
"""
