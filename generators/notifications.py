"""The words of every notification: one Alertmanager template file (Go templates), rendered with Jinja2 from the
definitions, that every receiver kind calls (alertmanager.py): the PagerDuty summary and details, the Slack
title and text, the mail's subject, HTML and text.

A message says which alert fired, what was rolled back (the flag, from the rollout when the alert fired, to 0 %),
the evidence the rule wrote into its annotations, and the runbook; for the shared-fault alert, that nothing was
rolled back and why (the definitions' `blame.alert`, when they hold back shared faults). Jinja2 here uses [[ ]]
and [% %], so the Go templates' {{ }} pass through untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import jinja2

from monitoring.definitions import names
from monitoring.definitions.model import Definitions

TITLE, TEXT, HTML = "title", "text", "html"  # the templates a receiver calls, each `<service>.<name>`
PAGERDUTY_SEVERITY = '{{ if eq .CommonLabels.severity "critical" }}critical{{ else }}warning{{ end }}'


def template_name(definitions: Definitions, name: str) -> str:
    return f"{definitions.service}.{name}"


def call(definitions: Definitions) -> Callable[[str], str]:
    """A function giving the Go template call of one of TITLE, TEXT, HTML."""
    return lambda name: f'{{{{ template "{template_name(definitions, name)}" . }}}}'


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("generators", "templates"),
        block_start_string="[%", block_end_string="%]", variable_start_string="[[", variable_end_string="]]",
        comment_start_string="[#", comment_end_string="#]",
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined, autoescape=False,
    )
    return environment.get_template("notifications.tmpl.j2")


def _quoted(text: str) -> str:
    """A Go string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def template(definitions: Definitions) -> str:
    shown = (names.SUMMARY, names.DESCRIPTION, names.RUNBOOK_URL, names.ROLLOUT_FROM)
    return _template().render(
        service=definitions.service,
        flag=_quoted(definitions.flag_name),
        action=names.ACTION, rollback=_quoted(names.ROLLBACK), flag_label=names.FLAG, severity=names.SEVERITY,
        shared_fault=_quoted(definitions.blame.alert) if definitions.blame else None, withheld=names.WITHHELD,
        summary=names.SUMMARY, description=names.DESCRIPTION, runbook_url=names.RUNBOOK_URL,
        rollout_from=_quoted(names.ROLLOUT_FROM),
        other_annotations=_quoted(f"^({'|'.join(shown)})$"),
    )
