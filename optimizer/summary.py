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
    return float(sum(c.obligation_usd for c in plan.commitments if not c.existing))


def upfront_by_month(plan: Plan) -> dict[str, float]:
    """Upfront cash (USD) the new commitments need, per calendar month of purchase (``YYYY-MM``)."""
    out: dict[str, float] = {}
    for c in plan.commitments:
        if not c.existing:
            key = f"{c.start:%Y-%m}"
            out[key] = out.get(key, 0.0) + c.count * c.upfront_usd_per_instance
    return dict(sorted(out.items()))


def _money_word(delta: float) -> str:
    """``saves 1,234 USD`` or ``costs 1,234 USD more`` (never a negative saving)."""
    return f"saves {usd(delta)}" if delta >= 0 else f"costs {usd(-delta)} more"


def _money_vs(delta: float, base: float) -> str:
    """:func:`_money_word` with its share of ``base``: ``saves 400 USD (40.0%)``, ``costs 75 USD more (7.5% more)``."""
    pct = 100.0 * abs(delta) / base if base else 0.0
    return f"{_money_word(delta)} ({pct:.1f}%{'' if delta >= 0 else ' more'})"


def budget_p90_warning(plan: Plan) -> str | None:
    """``--budget`` caps the expected cost; a line saying so when the p90 cost is above the budget, else None."""
    budget = ((plan.assumptions or {}).get("guardrails") or {}).get("budget_usd")
    p90 = plan.expected.total_p90_usd
    if budget is None or p90 is None or p90 <= budget + 0.005:
        return None
    return (f"the budget caps the expected cost only: the p90 cost {usd(p90)} is above the budget {usd(budget)} "
            "(1 window in 10 would exceed it)")


def _savings_plan_line(c: Commitment) -> str:
    """A savings plan: its hourly commitment, scope, rates per GPU model (flagged when estimated) and obligation."""
    scope = f"EC2 Instance SP, family {c.instance_family}" if c.instance_family else "Compute SP, any GPU model"
    rates = ", ".join(f"{r.gpu_model} {r.usd_per_gpu_hour:,.2f} USD/GPU-h on {r.instance_type}"
                      + (" (estimated from RI rates)" if r.rate_is_estimate else "") for r in c.sp_rates)
    line = (f"  {c.purchase_option} savings plan of {c.commitment_usd_per_hour:,.2f} USD/h from {c.start:%Y-%m-%d} "
            f"({scope}; covers {rates}; {c.count * c.upfront_usd_per_instance:,.0f} USD upfront; "
            f"obligation {usd(c.obligation_usd)}")
    if c.expected_utilization is not None:
        line += f"; expected use of its commitment {c.expected_utilization:.1%}"
    return line + ")"


def _commitment_line(c: Commitment) -> str:
    if c.is_savings_plan:
        return _savings_plan_line(c)
    line = (f"  {c.count} x {c.instance_type} {c.purchase_option} from {c.start:%Y-%m-%d} "
            f"({c.gpus:g} x {c.gpu_model}; {c.hourly_usd_per_instance:,.2f} USD/h per instance"
            f" + {c.upfront_usd_per_instance:,.0f} USD upfront each; obligation {usd(c.obligation_usd)}")
    if c.expected_utilization is not None:
        line += f"; expected use over its term {c.expected_utilization:.1%}"
    if c.rate_is_estimate:
        line += "; rate estimated"
    return line + ")"


def _payment_lines(plan: Plan) -> list[str]:
    """Why each line's payment option and term beat the next best considered (present value)."""
    choices = plan.assumptions.get("payment_choice") or []
    rate = plan.term.cost_of_capital if plan.term is not None else 0.0
    out = []
    for ch in choices:
        best, more = ch.get("next_best_option"), ch.get("next_best_more_usd")
        if best is None or more is None:
            continue
        what = f"  {ch['count']} x {ch['instance_type']} {ch['purchase_option']}"
        if abs(more) < 1.0:
            out.append(f"{what}: ties with {best} in present value")
        elif more > 0:
            out.append(f"{what}: {usd(more)} less in present value at {rate:.0%}/year than {best}, the next best")
        else:   # rounding between the filter and the bill; never hidden
            out.append(f"{what}: {best} would cost {usd(-more)} less in present value (within the model's rounding)")
    return out


def summary(plan: Plan) -> str:
    """A plain-text summary a platform lead or finance reader can act on: what to buy (now and tentatively),
    the money inside the window, and the money over the commitment terms as finance books it."""
    e = plan.expected
    term = plan.term
    head = (f"Purchase plan for {plan.region}, window {plan.window_start:%Y-%m-%d %H:%M} to "
            f"{plan.window_end:%Y-%m-%d %H:%M} UTC ({plan.hours:,} h)")
    if term is not None:
        horizon_h = int((term.horizon_end - plan.window_start) / pd.Timedelta(hours=1))
        head += f", judged over the commitment terms to {term.horizon_end:%Y-%m-%d} ({horizon_h:,} h)"
    lines = [head]
    snap = plan.assumptions.get("catalog", {}).get("snapshot_dates")
    if snap:
        lines[0] += f"; prices as of {', '.join(snap)}"
    owned = [c for c in plan.commitments if c.existing]
    new = [c for c in plan.commitments if not c.existing]
    firm = [c for c in new if c.firm is not False]
    tentative = [c for c in new if c.firm is False]
    if owned:
        lines.append("")
        lines.append("Already owned (sunk; used first, billed in their active hours):")
        for c in owned:
            use = f"; expected use {c.expected_utilization:.1%}" if c.expected_utilization is not None else ""
            if c.is_savings_plan:
                scope = f"family {c.instance_family}" if c.instance_family else "any GPU"
                lines.append(f"  {c.purchase_option} savings plan of {c.commitment_usd_per_hour:,.2f} USD/h until "
                             f"{c.expiry:%Y-%m-%d} ({scope}{use})")
            else:
                lines.append(f"  {c.count} x {c.instance_type} {c.purchase_option} until {c.expiry:%Y-%m-%d} "
                             f"({c.gpus:g} x {c.gpu_model}{use})")
    lines.append("")
    lines.append("What to buy now:" if tentative else "What to buy:")
    if firm:
        lines.extend(_commitment_line(c) for c in sorted(firm, key=lambda c: (c.start, c.gpu_model, c.instance_type)))
    else:
        reason = plan.assumptions.get("no_commitment_reason") or (
            "demand is too uncertain or too low over the terms for a commitment to pay off")
        lines.append(f"  no commitments now: {reason}")
    for s in plan.spot:
        lines.append(f"  spot: up to {s.max_instances} x {s.instance_type} ({s.gpu_model}, "
                     f"{s.usd_per_instance_hour:,.2f} USD/h, interruptions {s.interruption_bucket or 'unknown'}, "
                     f"rework {s.rework_fraction:.2%}"
                     + (f"; spot at most {s.max_spot_share:.0%} of {s.gpu_model} GPU-hours"
                        if s.max_spot_share is not None else "") + ")")
    for o in plan.on_demand:
        lines.append(f"  on-demand for the rest of {o.gpu_model}: {o.instance_type} at "
                     f"{o.usd_per_gpu_hour:,.2f} USD/GPU-h")
    if tentative:
        lines.append("Tentative (laddered: bought in their month only if that month's forecast still supports them):")
        lines.extend(_commitment_line(c) for c in sorted(tentative, key=lambda c: (c.start, c.gpu_model,
                                                                                    c.instance_type)))
    lines.append("")
    lines.append(f"Inside the window ({plan.window_start:%Y-%m-%d} to {plan.window_end:%Y-%m-%d}):")
    rng = ""
    if e.total_p10_usd is not None and e.total_p90_usd is not None:
        rng = f" (p10 {usd(e.total_p10_usd)}, p90 {usd(e.total_p90_usd)})"
        if e.total_usd > 0 and abs(e.total_p90_usd - e.total_p10_usd) < 0.5:
            rng = (f" (p10 = p90 = {usd(e.total_p90_usd)}: every scenario costs the same, because the history shows "
                   "no variation to estimate a range from; the real range is unknown, not zero)")
    lines.append(f"  expected cost {usd(e.total_usd)}{rng}: committed {usd(e.committed_usd)}, spot "
                 f"{usd(e.spot_usd)}, on-demand {usd(e.on_demand_usd)}")
    lines.append(f"  all on-demand would cost {usd(e.all_on_demand_usd)}: the plan "
                 f"{_money_vs(e.savings_usd, e.all_on_demand_usd)}")
    if e.cvar90_usd is not None:
        lines.append(f"  risk: mean cost of the worst 10% of scenarios (CVaR90) {usd(e.cvar90_usd)}")
    if e.commitment_utilization is not None:
        lines.append(f"  expected commitment utilisation {e.commitment_utilization:.1%}")
    if term is not None and e.horizon_total_usd is not None:
        lines.append("")
        lines.append(f"Over the commitment terms (to {term.horizon_end:%Y-%m-%d}; cost of capital "
                     f"{term.cost_of_capital:.0%}/year):")
        if new:
            lines.append(f"  obligation of the new commitments: {usd(e.obligation_total_usd or 0.0)} over their full "
                         f"terms, of which {usd(e.obligation_after_window_usd or 0.0)} after the window (paid "
                         "whether used or not)")
        by_month = e.upfront_by_month if e.upfront_by_month is not None else upfront_by_month(plan)
        if by_month:
            lines.append("  upfront cash: " + ", ".join(f"{m} {usd(v)}" for m, v in by_month.items()))
        hr = ""
        if e.horizon_p10_usd is not None and e.horizon_p90_usd is not None:
            hr = f" (p10 {usd(e.horizon_p10_usd)}, p90 {usd(e.horizon_p90_usd)})"
        lines.append(f"  expected cost to {term.horizon_end:%Y-%m-%d}: {usd(e.horizon_total_usd)}{hr}")
        if e.horizon_all_on_demand_usd:
            save = e.horizon_all_on_demand_usd - e.horizon_total_usd
            lines.append(f"  all on-demand would cost {usd(e.horizon_all_on_demand_usd)}: the plan "
                         f"{_money_vs(save, e.horizon_all_on_demand_usd)}")
        if e.present_value_usd is not None:
            pv_od = e.present_value_all_on_demand_usd
            lines.append(f"  present value {usd(e.present_value_usd)}"
                         + (f" (all on-demand {usd(pv_od)})" if pv_od else ""))
        if e.horizon_commitment_utilization is not None:
            lines.append(f"  expected commitment utilisation over the terms {e.horizon_commitment_utilization:.1%}")
        pay = _payment_lines(plan)
        if pay:
            lines.append("  payment option and term, against the next best considered:")
            lines.extend("  " + x for x in pay)
    elif new:
        lines.append(f"Commitment obligation over the full terms: {usd(commitment_obligation_usd(plan))} "
                     "(paid whether used or not)")
        lines.append(f"Upfront cash at purchase: {usd(e.upfront_usd)}")
        by_month = upfront_by_month(plan)
        if len(by_month) > 1:
            lines.append("  by month: " + ", ".join(f"{m} {usd(v)}" for m, v in by_month.items()))
    if new:
        if e.break_even_month and e.break_even_projected:
            lines.append(f"Break-even: cumulative cash savings vs all on-demand turn positive in {e.break_even_month} "
                         "(projected: the window's average hourly saving assumed to continue over the term)")
        elif e.break_even_month:
            lines.append(f"Break-even: cumulative cash savings vs all on-demand turn positive in {e.break_even_month}")
        elif "ladder" in plan.assumptions:   # planned by a version that computes break-even (not an old file)
            lines.append("Break-even: cumulative cash savings vs all on-demand do not turn positive within the "
                         "commitment terms")
    from optimizer.capacity_blocks import summary_lines as capacity_block_lines

    lines.extend(capacity_block_lines(plan.capacity_blocks))
    lookback = plan.assumptions.get("lookback_expected_usd") or {}
    if lookback:
        basis = plan.assumptions.get("lookback_basis", "window")
        own = e.present_value_usd if basis == "term" and e.present_value_usd is not None else e.total_usd
        where = "present value over the terms" if basis == "term" else "the window"
        lines.append(f"Look-back recommenders (the console's flat commitment sized on the last 7/30/60 days), on the "
                     f"same scenarios, {where}: " + "; ".join(f"{k} {usd(v)}, the plan {_money_word(v - own)}"
                                                            for k, v in lookback.items()))
    a = plan.assumptions
    if a:
        spot = f"max {a.get('max_spot_share', 0):.0%} of GPU-hours" if a.get("allow_spot", True) else "not allowed"
        if a.get("horizon") == "term":
            basis = ("new commitments may start in any month (laddered)" if a.get("ladder")
                     else "commitments start at the window start")
            basis += "; each judged over its whole term"
        else:
            basis = ("new commitments may start in any month (laddered)" if a.get("ladder")
                     else "commitments start at the window start")
            basis += "; judged on the window, taken as representative of the term"
        lines.append(f"Assumptions: demand growth {a.get('growth', 0):+.0%}, spot {spot}, options "
                     f"{', '.join(a.get('options_considered', []))}; {basis}")
        g = a.get("guardrails") or {}
        limits = []
        if g.get("budget_usd") is not None:
            over = "" if g.get("within_budget", True) else (" (the billed expected cost is above it: the model "
                                                            "underestimates spot's serving-rule cost)")
            limits.append(f"budget {usd(g['budget_usd'])} over the window{over}")
            warn = budget_p90_warning(plan)
            if warn:
                limits.append(warn)
        cap = g.get("max_obligation_usd", g.get("max_commit_usd"))
        if cap is not None:
            limits.append(f"maximum commitment {usd(cap)} (obligation over the full terms)")
        if g.get("max_commit_share") is not None:
            limits.append(f"new commitments at most {g['max_commit_share']:.0%} of the plan's cost")
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
