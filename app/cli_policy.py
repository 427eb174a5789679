"""``gpuplan policy export``: the guardrails policy file as the artefacts that enforce it at provisioning
(:mod:`operate.policy_export`: AWS SCP, AWS tag policy, Kyverno, Cloud Custodian).

Registered on the main ``app`` of :mod:`app.cli_common` as the ``policy`` group, with its conventions: a user
mistake ends with one ``error: ...`` line and exit status 2; the files are written atomically into ``--out`` and
never over an input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli_common import (
    USER_ERRORS,
    CatalogOpt,
    OneLineErrorGroup,
    app,
    fail,
    guarded_command,
    out,
)
from optimizer.catalog import load_catalog

policy_app = typer.Typer(cls=OneLineErrorGroup, no_args_is_help=True,
                         help="Turn the guardrails policy into provisioning-time enforcement.")
app.add_typer(policy_app, name="policy")


@policy_app.command("export")
def policy_export(
    policy: Annotated[Path, typer.Option(help="guardrails policy YAML (as for gpuplan check)")],
    target: Annotated[str, typer.Option(help="aws-scp | aws-tag-policy | kyverno | custodian")],
    out_dir: Annotated[Path, typer.Option("--out", help="folder to write the artefacts into")],
    approval_key: Annotated[str, typer.Option(help="tag / pod label that marks an approved launch")] =
        "gpuplan-approval",
    env_key: Annotated[str, typer.Option(help="tag whose production values (prod, production) are never "
                                              "stopped")] = "env",
    catalog: CatalogOpt = None,
) -> None:
    """Write the policy as an AWS SCP, an AWS tag policy, Kyverno ClusterPolicies or Cloud Custodian policies."""
    from operate.policy import load_policy
    from operate.policy_export import APPLY, PolicyExportError, config_from_catalog, export

    try:
        pol = load_policy(policy)
        cfg = config_from_catalog(load_catalog(catalog), approval_key=approval_key, env_key=env_key)
        written = export(pol, target, out_dir, cfg)
    except (*USER_ERRORS, PolicyExportError) as exc:
        fail(exc)
    for path in written:
        out.print(f"wrote {path}", markup=False, highlight=False)
        out.print(f"  apply: {APPLY[target].format(file=path)}", markup=False, highlight=False)


for _info in policy_app.registered_commands:
    if _info.callback is not None and not getattr(_info.callback, "_gpuplan_guarded", False):
        _info.callback = guarded_command(_info.callback)
        _info.callback._gpuplan_guarded = True  # type: ignore[attr-defined]
