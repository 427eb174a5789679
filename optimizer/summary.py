"""Human summary of a plan: what to buy, when, what it costs and saves (USD, GPUs, instances, hours)."""

from __future__ import annotations

import pandas as pd

from optimizer.plan import Plan


def usd(x: float) -> str:
    return f"{x:,.0f} USD"


def commitments_table(plan: Plan) -> pd.DataFrame:
    """One row per commitment: what to buy, when, its GPUs and prices."""
    rows = [{"gpu_model": c.gpu_model, "instance_type": c.instance_type, "purchase_option": c.purchase_option,
             "count": c.count, "gpus": c.gpus, "start": c.start, "term_hours": c.term_hours,
             "usd_per_instance_hour": c.hourly_usd_per_instance, "upfront_usd_per_instance": c.upfront_usd_per_instance,
             "effective_usd_per_instance_hour": c.effective_hourly_usd,
             "window_cost_usd": c.count * c.effective_hourly_usd * plan.hours}
            for c in plan.commitments]
    return pd.DataFrame(rows, columns=["gpu_model", "instance_type", "purchase_option", "count", "gpus", "start",
                                       "term_hours", "usd_per_instance_hour", "upfront_usd_per_instance",
                                       "effective_usd_per_instance_hour", "window_cost_usd"])


def commitment_obligation_usd(plan: Plan) -> float:
    """USD owed over the whole terms of the plan's commitments (upfront plus every recurring hour)."""
    return float(sum(c.count * c.effective_hourly_usd * c.term_hours for c in plan.commitments))


def summary(plan: Plan) -> str:
    """A plain-text summary a platform lead or finance reader can act on."""
    e = plan.expected
    lines = [f"Purchase plan for {plan.region}, {plan.window_start:%Y-%m-%d %H:%M} to {plan.window_end:%Y-%m-%d %H:%M}"
             f" UTC ({plan.hours} h)"]
    snap = plan.assumptions.get("catalog", {}).get("snapshot_dates")
    if snap:
        lines[0] += f", prices as of {', '.join(snap)}"
    lines.append("")
    lines.append("What to buy:")
    if plan.commitments:
        for c in plan.commitments:
            lines.append(f"  {c.count} x {c.instance_type} {c.purchase_option} from {c.start:%Y-%m-%d} "
                         f"({c.gpus:g} x {c.gpu_model}; {c.hourly_usd_per_instance:,.2f} USD/h per instance"
                         f" + {c.upfront_usd_per_instance:,.0f} USD upfront each)")
    else:
        lines.append("  no commitments: demand is too uncertain or too low for a commitment to pay off")
    for s in plan.spot:
        lines.append(f"  spot: up to {s.max_instances} x {s.instance_type} ({s.gpu_model}, "
                     f"{s.usd_per_instance_hour:,.2f} USD/h, interruptions {s.interruption_bucket or 'unknown'}, "
                     f"rework {s.rework_fraction:.2%})")
    for o in plan.on_demand:
        lines.append(f"  on-demand for the rest of {o.gpu_model}: {o.instance_type} at "
                     f"{o.usd_per_gpu_hour:,.2f} USD/GPU-h")
    lines.append("")
    rng = ""
    if e.total_p10_usd is not None and e.total_p90_usd is not None:
        rng = f" (p10 {usd(e.total_p10_usd)}, p90 {usd(e.total_p90_usd)})"
    lines.append(f"Expected cost over the window: {usd(e.total_usd)}{rng}")
    lines.append(f"  committed {usd(e.committed_usd)}, spot {usd(e.spot_usd)}, on-demand {usd(e.on_demand_usd)}")
    lines.append(f"All on-demand would cost {usd(e.all_on_demand_usd)}: savings {usd(e.savings_usd)} "
                 f"({e.savings_pct:.1f}%)")
    if e.commitment_utilization is not None:
        lines.append(f"Expected commitment utilisation: {e.commitment_utilization:.1%}")
    lines.append(f"Upfront cash at purchase: {usd(e.upfront_usd)}")
    if plan.commitments:
        lines.append(f"Commitment obligation over the full terms: {usd(commitment_obligation_usd(plan))} "
                     "(paid whether used or not)")
    a = plan.assumptions
    if a:
        spot = f"max {a.get('max_spot_share', 0):.0%} of GPU-hours" if a.get("allow_spot", True) else "not allowed"
        lines.append(f"Assumptions: demand growth {a.get('growth', 0):+.0%}, spot {spot}, options "
                     f"{', '.join(a.get('options_considered', []))}; commitments charged at their effective hourly "
                     "rate for every window hour")
    return "\n".join(lines)
