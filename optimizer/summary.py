"""Human summary of a plan: what to buy, when, what it costs and saves (USD, GPUs, instances, hours)."""

from __future__ import annotations

import pandas as pd

from optimizer.plan import Commitment, Plan


def usd(x: float) -> str:
    return f"{x:,.0f} USD"


def _window_hours(plan: Plan, c: Commitment) -> int:
    """Hours of the plan window in which the commitment is active."""
    hours = pd.date_range(plan.window_start, plan.window_end, freq="h", inclusive="left")
    return int(c.active(hours).sum())


def commitments_table(plan: Plan) -> pd.DataFrame:
    """One row per commitment: what to buy, when, its GPUs and prices (``existing`` rows are already owned)."""
    rows = [{"gpu_model": c.gpu_model, "instance_type": c.instance_type, "purchase_option": c.purchase_option,
             "count": c.count, "gpus": c.gpus, "start": c.start, "term_hours": c.term_hours,
             "usd_per_instance_hour": c.hourly_usd_per_instance, "upfront_usd_per_instance": c.upfront_usd_per_instance,
             "effective_usd_per_instance_hour": c.effective_hourly_usd,
             "window_cost_usd": c.count * c.effective_hourly_usd * _window_hours(plan, c), "existing": c.existing}
            for c in plan.commitments]
    return pd.DataFrame(rows, columns=["gpu_model", "instance_type", "purchase_option", "count", "gpus", "start",
                                       "term_hours", "usd_per_instance_hour", "upfront_usd_per_instance",
                                       "effective_usd_per_instance_hour", "window_cost_usd", "existing"])


def commitment_obligation_usd(plan: Plan) -> float:
    """USD owed over the whole terms of the commitments the plan buys (upfront plus every recurring hour);
    commitments already owned are not included."""
    return float(sum(c.count * c.effective_hourly_usd * c.term_hours for c in plan.commitments if not c.existing))


def upfront_by_month(plan: Plan) -> dict[str, float]:
    """Upfront cash (USD) the new commitments need, per calendar month of purchase (``YYYY-MM``)."""
    out: dict[str, float] = {}
    for c in plan.commitments:
        if not c.existing:
            key = f"{c.start:%Y-%m}"
            out[key] = out.get(key, 0.0) + c.count * c.upfront_usd_per_instance
    return dict(sorted(out.items()))


def summary(plan: Plan) -> str:
    """A plain-text summary a platform lead or finance reader can act on."""
    e = plan.expected
    lines = [f"Purchase plan for {plan.region}, {plan.window_start:%Y-%m-%d %H:%M} to {plan.window_end:%Y-%m-%d %H:%M}"
             f" UTC ({plan.hours} h)"]
    snap = plan.assumptions.get("catalog", {}).get("snapshot_dates")
    if snap:
        lines[0] += f", prices as of {', '.join(snap)}"
    owned = [c for c in plan.commitments if c.existing]
    new = [c for c in plan.commitments if not c.existing]
    if owned:
        lines.append("")
        lines.append("Already owned (sunk; used first, billed in their active hours):")
        for c in owned:
            end = c.end if c.end is not None else c.start + pd.Timedelta(hours=c.term_hours)
            lines.append(f"  {c.count} x {c.instance_type} {c.purchase_option} until {end:%Y-%m-%d} "
                         f"({c.gpus:g} x {c.gpu_model})")
    lines.append("")
    lines.append("What to buy:")
    if new:
        for c in sorted(new, key=lambda c: (c.start, c.gpu_model, c.instance_type)):
            lines.append(f"  {c.count} x {c.instance_type} {c.purchase_option} from {c.start:%Y-%m-%d} "
                         f"({c.gpus:g} x {c.gpu_model}; {c.hourly_usd_per_instance:,.2f} USD/h per instance"
                         f" + {c.upfront_usd_per_instance:,.0f} USD upfront each)")
    else:
        lines.append("  no commitments: demand is too uncertain or too low for a commitment to pay off")
    for s in plan.spot:
        lines.append(f"  spot: up to {s.max_instances} x {s.instance_type} ({s.gpu_model}, "
                     f"{s.usd_per_instance_hour:,.2f} USD/h, interruptions {s.interruption_bucket or 'unknown'}, "
                     f"rework {s.rework_fraction:.2%}"
                     + (f"; spot at most {s.max_spot_share:.0%} of {s.gpu_model} GPU-hours"
                        if s.max_spot_share is not None else "") + ")")
    for o in plan.on_demand:
        lines.append(f"  on-demand for the rest of {o.gpu_model}: {o.instance_type} at "
                     f"{o.usd_per_gpu_hour:,.2f} USD/GPU-h")
    lines.append("")
    rng = ""
    if e.total_p10_usd is not None and e.total_p90_usd is not None:
        rng = f" (p10 {usd(e.total_p10_usd)}, p90 {usd(e.total_p90_usd)})"
    lines.append(f"Expected cost over the window: {usd(e.total_usd)}{rng}")
    if e.cvar90_usd is not None:
        lines.append(f"  risk: mean cost of the worst 10% of scenarios (CVaR90) {usd(e.cvar90_usd)}")
    lines.append(f"  committed {usd(e.committed_usd)}, spot {usd(e.spot_usd)}, on-demand {usd(e.on_demand_usd)}")
    lines.append(f"All on-demand would cost {usd(e.all_on_demand_usd)}: savings {usd(e.savings_usd)} "
                 f"({e.savings_pct:.1f}%)")
    lookback = plan.assumptions.get("lookback_expected_usd") or {}
    if lookback:
        lines.append("Look-back recommenders on the same scenarios (the console's flat commitment sized on the last "
                     "7/30/60 days): " + "; ".join(f"{k} {usd(v)}, plan saves {usd(v - e.total_usd)}"
                                                  for k, v in lookback.items()))
    if e.commitment_utilization is not None:
        lines.append(f"Expected commitment utilisation: {e.commitment_utilization:.1%}")
    lines.append(f"Upfront cash at purchase: {usd(e.upfront_usd)}")
    by_month = upfront_by_month(plan)
    if len(by_month) > 1:
        lines.append("  by month: " + ", ".join(f"{m} {usd(v)}" for m, v in by_month.items()))
    if new:
        lines.append(f"Commitment obligation over the full terms: {usd(commitment_obligation_usd(plan))} "
                     "(paid whether used or not)")
        if e.break_even_month and e.break_even_projected:
            lines.append(f"Break-even: cumulative cash savings vs all on-demand turn positive in {e.break_even_month} "
                         "(projected: the window's average hourly saving assumed to continue over the term)")
        elif e.break_even_month:
            lines.append(f"Break-even: cumulative cash savings vs all on-demand turn positive in {e.break_even_month}")
        elif "ladder" in plan.assumptions:   # planned by a version that computes break-even (not an old file)
            lines.append("Break-even: cumulative cash savings vs all on-demand do not turn positive within the "
                         "commitment terms at the window's saving rate")
    a = plan.assumptions
    if a:
        spot = f"max {a.get('max_spot_share', 0):.0%} of GPU-hours" if a.get("allow_spot", True) else "not allowed"
        basis = ("new commitments may start in any month (laddered)" if a.get("ladder")
                 else "commitments start at the window start")
        lines.append(f"Assumptions: demand growth {a.get('growth', 0):+.0%}, spot {spot}, options "
                     f"{', '.join(a.get('options_considered', []))}; {basis}; commitments charged at their effective "
                     "hourly rate for every covered window hour")
        g = a.get("guardrails") or {}
        limits = []
        if g.get("budget_usd") is not None:
            over = "" if g.get("within_budget", True) else (" (the billed expected cost is above it: the model "
                                                            "underestimates spot's serving-rule cost)")
            limits.append(f"budget {usd(g['budget_usd'])}{over}")
        if g.get("max_commit_usd") is not None:
            limits.append(f"new commitments at most {usd(g['max_commit_usd'])}")
        if g.get("max_commit_share") is not None:
            limits.append(f"new commitments at most {g['max_commit_share']:.0%} of expected cost")
        if g.get("spot_capacity"):
            limits.append("spot capacity " + ", ".join(f"{t} <= {n}" for t, n in g["spot_capacity"].items()))
        blocked = sorted(set(g.get("needs_approval") or ()) - set(g.get("approved") or ()))
        if blocked:
            limits.append("not approved: " + ", ".join(blocked))
        risk = (a.get("risk") or {}).get("cvar_weight")
        if risk:
            limits.append(f"risk weight {risk:g} on CVaR90")
        if limits:
            lines.append("Guardrails: " + "; ".join(limits))
    return "\n".join(lines)
