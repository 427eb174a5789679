"""What the Plan, What-if and Scenarios pages show of a plan, as frames and lines (no streamlit).

Pure functions of a :class:`optimizer.solve.PlanResult` or :class:`optimizer.plan.Plan`: the plan billed hour by
hour on every scenario and its daily and per-GPU-model costs, what to buy (firm or tentative), rightsizing's
routing, spot allowances, planned runs on Capacity Blocks, on-demand rates, the obligation, upfront cash and
payment options, the plan's notes, the summary figures the other pages keep, coverage and the cost comparison of
two plans. The cached calls of :mod:`app.state` and the pages render them.

Units: USD (per hour where the column says so), GPUs per hour, timestamps naive UTC hour starts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from app import fmt
from optimizer.billing import model_cost_arrays
from optimizer.plan import Commitment, Plan
from optimizer.solve import PlanResult
from optimizer.summary import commitment_obligation_usd, commitments_table, upfront_by_month
from usage import schema as S

COST_CATEGORIES = ("committed", "spot", "on-demand")
_COST_KEYS = {"committed": "committed_usd", "spot": "spot_usd", "on-demand": "on_demand_usd"}


def hourly_costs(result: PlanResult) -> pd.DataFrame:
    """The plan billed on every demand scenario: ``scenario, timestamp, gpu_type, category, usd`` (USD per hour).

    Uses the one serving rule of :mod:`optimizer.billing`, so the totals match the plan's expected block.
    """
    sc = result.scenarios
    n_s, n_t = len(sc.names), len(sc.hours)
    frames = []
    joint, _ = model_cost_arrays(result.plan, {g: sc.demand[g] for g in sc.gpu_models}, sc.hours)  # savings plans
    for gpu in sc.gpu_models:
        arrays = joint[gpu]
        for category, key in _COST_KEYS.items():
            frames.append(pd.DataFrame({"scenario": np.repeat(np.asarray(sc.names, dtype=object), n_t),
                                        S.TIMESTAMP: np.tile(sc.hours.to_numpy(), n_s), S.GPU_TYPE: gpu,
                                        "category": category, "usd": arrays[key].reshape(-1)}))
    return pd.concat(frames, ignore_index=True)


def daily_costs(hourly: pd.DataFrame, weights: dict[str, float]) -> pd.DataFrame:
    """Expected (scenario-weighted) cost per UTC day and category: ``day, category, usd``."""
    rows = hourly.assign(usd=hourly["usd"] * hourly["scenario"].map(weights).astype(float),
                         day=hourly[S.TIMESTAMP].dt.floor("D"))
    out = rows.groupby(["day", "category"], as_index=False)["usd"].sum()
    return _order_categories(out)


def gpu_model_costs(hourly: pd.DataFrame, weights: dict[str, float]) -> pd.DataFrame:
    """Expected (scenario-weighted) window cost per GPU model and category: ``gpu_type, category, usd``."""
    per = hourly.groupby(["scenario", S.GPU_TYPE, "category"], as_index=False)["usd"].sum()
    per["usd"] = per["usd"] * per["scenario"].map(weights).astype(float)
    out = per.groupby([S.GPU_TYPE, "category"], as_index=False)["usd"].sum()
    return _order_categories(out)


def _order_categories(frame: pd.DataFrame) -> pd.DataFrame:
    frame["category"] = pd.Categorical(frame["category"], categories=list(COST_CATEGORIES), ordered=True)
    keys = [c for c in ("day", S.GPU_TYPE) if c in frame.columns]
    return frame.sort_values([*keys, "category"]).reset_index(drop=True).astype({"category": str})


COMMITMENT_STATUS = {True: "firm: buy now", False: "tentative: re-decided in its month", None: "buy"}


def commitment_status(c: Commitment) -> str:
    """A commitment's status in words: owned, firm (buy now) or tentative (a later laddered purchase)."""
    return "owned" if c.existing else COMMITMENT_STATUS[c.firm]


def commitments_frame(plan: Plan) -> pd.DataFrame:
    """What to buy, with display column names carrying their units: firm (buy now) or tentative, expected use
    over each commitment's term and its obligation over the full term."""
    t = commitments_table(plan)
    return pd.DataFrame({
        "Status": [commitment_status(c) for c in plan.commitments],
        "Count": t["count"], "Instance type": t["instance_type"], "Option": t["purchase_option"],
        "GPU model": t["gpu_model"], "GPUs": t["gpus"], "USD/h per instance": t["usd_per_instance_hour"],
        "Upfront USD per instance": t["upfront_usd_per_instance"],
        "Effective USD/h per instance": t["effective_usd_per_instance_hour"],
        "Upfront USD total": t["count"] * t["upfront_usd_per_instance"],
        "Start (UTC)": t["start"], "Term (h)": t["term_hours"],
        "Expected use over its term (%)": [None if c.expected_utilization is None else 100.0 * c.expected_utilization
                                           for c in plan.commitments],
        "Obligation over the term (USD)": [0.0 if c.existing else c.obligation_usd for c in plan.commitments],
        "Window cost (USD)": t["window_cost_usd"],
    }, columns=["Status", "Count", "Instance type", "Option", "GPU model", "GPUs", "USD/h per instance",
                "Upfront USD per instance", "Effective USD/h per instance", "Upfront USD total", "Start (UTC)",
                "Term (h)", "Expected use over its term (%)", "Obligation over the term (USD)", "Window cost (USD)"])


def routing_frame(plan: Plan) -> pd.DataFrame:
    """The plan's per-team rightsizing (plan.json ``routing``) with display names carrying units."""
    return pd.DataFrame([{
        "Team": r.team, "Workload class": r.workload_class, "Class from": r.class_source,
        "GPU models today": ", ".join(r.from_gpu_types), "Routed to": r.gpu_model,
        "Moved": r.gpu_model not in r.from_gpu_types,
        "Speed (x A100)": r.relative_throughput, "Work (A100-hours)": r.reference_gpu_hours,
        "GPU-hours": r.gpu_hours, "USD per A100-hour": r.usd_per_reference_gpu_hour,
        "Spot allowed": r.spot_allowed, "Instance types": ", ".join(r.instance_types), "Reason": r.reason}
        for r in plan.routing],
        columns=["Team", "Workload class", "Class from", "GPU models today", "Routed to", "Moved", "Speed (x A100)",
                 "Work (A100-hours)", "GPU-hours", "USD per A100-hour", "Spot allowed", "Instance types", "Reason"])


def routing_caption(plan: Plan) -> str:
    """One line: how many teams the rightsizing moved and the routed GPU mix by work (A100-hours)."""
    frame = routing_frame(plan)
    moved = frame.loc[frame["Moved"], "Team"].nunique()
    work = frame.groupby("Routed to")["Work (A100-hours)"].sum().sort_values(ascending=False)
    total = float(work.sum())
    mix = ", ".join(f"{g} {fmt.pct(v / total, 0)}" for g, v in work.items()) if total > 0 else "no work"
    speed = plan.assumptions.get("rightsizing", {}).get("speed_priority")
    at = f" at speed priority {fmt.pct(float(speed), 0)}" if speed is not None else ""
    return (f"Rightsized{at}: {moved} of {frame['Team'].nunique()} teams moved to another GPU model; work by GPU "
            f"model: {mix}.")


def spot_frame(plan: Plan) -> pd.DataFrame:
    """Spot allowances: at most N instances at once, with their price and rework."""
    return pd.DataFrame([{
        "GPU model": s.gpu_model, "Instance type": s.instance_type, "Max instances": s.max_instances,
        "Max GPUs": s.max_instances * s.gpus_per_instance, "USD/h per instance": s.usd_per_instance_hour,
        "Interruptions (monthly)": s.interruption_bucket or "unknown", "Rework (%)": 100.0 * s.rework_fraction,
        "USD per useful GPU-hour": s.usd_per_useful_gpu_hour} for s in plan.spot],
        columns=["GPU model", "Instance type", "Max instances", "Max GPUs", "USD/h per instance",
                 "Interruptions (monthly)", "Rework (%)", "USD per useful GPU-hour"])


CB_COLUMNS = ["Planned run", "Team", "GPU model", "Capacity Block", "Book by (UTC)", "Upfront (USD)",
              "Capacity Block (USD)", "Plan (USD)", "On-demand (USD)", "Spot (USD)", "Not feasible", "Recommended",
              "Saving vs next best (USD)"]


def capacity_blocks_frame(plan: Plan) -> pd.DataFrame:
    """One row per planned run (an ``add`` event) of the plan's ``capacity_blocks`` block: the block that would
    serve it (instances, start, days; or why none applies), when to book it, and what serving the run costs on a
    Capacity Block, with the plan's commitments, spot and on-demand, on on-demand alone and on spot alone (USD,
    expected over the plan's scenarios; ``Not feasible`` names a way that cannot serve it and why), which is
    recommended and by how much it beats the next best. Empty without planned runs."""
    from optimizer.capacity_blocks import OPTION_NAMES

    def name(option: str) -> str:
        return OPTION_NAMES[option][:1].upper() + OPTION_NAMES[option][1:]

    rows = []
    for r in (plan.capacity_blocks or {}).get("events", []):
        row = {"Planned run": r["event"], "Team": r["team"], "GPU model": r["gpu_type"]}
        if not r.get("eligible"):
            rows.append({**row, "Capacity Block": f"none: {r['reason']}"})
            continue
        alt = r["alternatives"]
        start = pd.Timestamp(r["block_start"])
        book = "now" if r["bookable_now"] else f"from {pd.Timestamp(r['book_from']):%Y-%m-%d}"
        row.update({
            "Capacity Block": (f"{r['instance_count']} x {r['instance_type']} for {r['days']} days from "
                               f"{start:%Y-%m-%d %H:%M} UTC at {r['usd_per_instance_hour']:,.2f} USD/instance-h"),
            "Book by (UTC)": f"{pd.Timestamp(r['book_by']):%Y-%m-%d %H:%M} (bookable {book})",
            "Upfront (USD)": alt["capacity_block"]["upfront_usd"],
            "Recommended": name(r["recommended"]),
            "Saving vs next best (USD)": r.get("saving_vs_next_best_usd")})
        for key, col in (("capacity_block", "Capacity Block (USD)"), ("plan", "Plan (USD)"),
                         ("on_demand", "On-demand (USD)"), ("spot", "Spot (USD)")):
            row[col] = alt[key]["usd"] if key in alt else None
        row["Not feasible"] = "; ".join(f"{name(k)}: {v['why']}" for k, v in alt.items() if not v["feasible"])
        rows.append(row)
    return pd.DataFrame(rows, columns=CB_COLUMNS)


def on_demand_frame(plan: Plan) -> pd.DataFrame:
    """On-demand rate per GPU model for the demand left after commitments and spot."""
    return pd.DataFrame([{"GPU model": o.gpu_model, "Instance type": o.instance_type,
                          "USD per GPU-hour": o.usd_per_gpu_hour} for o in plan.on_demand],
                        columns=["GPU model", "Instance type", "USD per GPU-hour"])


def obligation_usd(plan: Plan) -> float:
    """The new commitments' obligation over their full terms (USD): the plan's figure, else computed."""
    e = plan.expected
    return e.obligation_total_usd if e.obligation_total_usd is not None else commitment_obligation_usd(plan)


def plan_summary(result: PlanResult) -> dict[str, float | int | str | None]:
    """The figures the Planner shows, as plain numbers (USD, %, counts): inside the window (``expected_usd`` and
    the rest) and over the commitment terms (``obligation_*``, ``horizon_*``, ``present_value_*``, None for a plan
    judged on the window alone)."""
    plan = result.plan
    e = plan.expected
    util = None if e.commitment_utilization is None else 100.0 * e.commitment_utilization
    horizon_util = None if e.horizon_commitment_utilization is None else 100.0 * e.horizon_commitment_utilization
    return {"expected_usd": e.total_usd, "p10_usd": e.total_p10_usd, "p90_usd": e.total_p90_usd,
            "all_on_demand_usd": e.all_on_demand_usd, "savings_usd": e.savings_usd, "savings_pct": e.savings_pct,
            "commitment_utilization_pct": util, "upfront_usd": e.upfront_usd,
            "commitment_obligation_usd": obligation_usd(plan), "obligation_total_usd": obligation_usd(plan),
            "obligation_after_window_usd": e.obligation_after_window_usd, "committed_usd": e.committed_usd,
            "spot_usd": e.spot_usd, "on_demand_usd": e.on_demand_usd,
            "horizon_end": None if plan.term is None else f"{plan.term.horizon_end:%Y-%m-%dT%H:%M:%SZ}",
            "cost_of_capital": None if plan.term is None else plan.term.cost_of_capital,
            "horizon_total_usd": e.horizon_total_usd, "horizon_p10_usd": e.horizon_p10_usd,
            "horizon_p90_usd": e.horizon_p90_usd, "horizon_all_on_demand_usd": e.horizon_all_on_demand_usd,
            "present_value_usd": e.present_value_usd,
            "present_value_all_on_demand_usd": e.present_value_all_on_demand_usd,
            "horizon_commitment_utilization_pct": horizon_util,
            "commitments": sum(c.count for c in plan.commitments),
            "spot_allowances": len(plan.spot),
            "spot_max_instances": sum(s.max_instances for s in plan.spot),
            "solve_seconds": result.build_seconds + result.solve_seconds}


def upfront_frame(plan: Plan) -> pd.DataFrame:
    """Upfront cash of the new commitments by calendar month of purchase: ``month`` (``YYYY-MM``), ``usd``."""
    by_month = plan.expected.upfront_by_month
    if by_month is None:
        by_month = upfront_by_month(plan)
    rows = [{"month": m, "usd": float(v)} for m, v in sorted(by_month.items()) if v > 0]
    return pd.DataFrame(rows, columns=["month", "usd"])


def payment_frame(plan: Plan) -> pd.DataFrame:
    """Why each commitment line's payment option and term (plan.json ``assumptions.payment_choice``): the next
    best option the plan considered for the same instance type and how much more it costs in present value (USD
    at the plan's cost of capital; a new term is billed over the horizon on every scenario)."""
    rows = []
    for ch in plan.assumptions.get("payment_choice") or []:
        more = ch.get("next_best_more_usd")
        rows.append({"Commitment": f"{ch.get('count')} x {ch.get('instance_type')}",
                     "GPU model": ch.get("gpu_model"), "Start (UTC)": str(ch.get("start", ""))[:10],
                     "Chosen option": ch.get("purchase_option"),
                     "Next best option": ch.get("next_best_option") or "none (the only option considered)",
                     "Next best costs more (USD, present value)": None if more is None else float(more)})
    return pd.DataFrame(rows, columns=["Commitment", "GPU model", "Start (UTC)", "Chosen option", "Next best option",
                                       "Next best costs more (USD, present value)"])


def payment_lines(plan: Plan) -> list[str]:
    """:func:`payment_frame` as plain sentences (the HTML summary), never claiming a negative saving."""
    rate = plan.term.cost_of_capital if plan.term is not None else 0.0
    out = []
    for _, r in payment_frame(plan).iterrows():
        what = f"{r['Commitment']} {r['Chosen option']}"
        more = r["Next best costs more (USD, present value)"]
        if more is None or pd.isna(more):
            out.append(f"{what}: {r['Next best option']}")
        elif abs(more) < 1.0:
            out.append(f"{what}: ties with {r['Next best option']} in present value")
        elif more > 0:
            out.append(f"{what}: {fmt.usd(more)} less in present value at {fmt.pct(rate, 0)}/year than "
                       f"{r['Next best option']}, the next best")
        else:
            out.append(f"{what}: {r['Next best option']} would cost {fmt.usd(-more)} less in present value "
                       "(within the model's rounding)")
    return out


SHORT_HISTORY_PREFIX = "history of "
"""Plan notes that start with this warn (the history is short against the window or the terms)."""


def plan_notes(plan: Plan) -> list[tuple[str, str]]:
    """The plan's notes (plan.json ``assumptions.notes``) as ``(level, text)``: ``warning`` for a short history
    (ranges widened, 3-year options left out), ``info`` otherwise. Plain text: pages escape it."""
    notes = plan.assumptions.get("notes") or []
    return [("warning" if str(n).startswith(SHORT_HISTORY_PREFIX) else "info", str(n)) for n in notes]


def scenario_weights(result: PlanResult) -> dict[str, float]:
    return {n: float(w) for n, w in zip(result.scenarios.names, np.asarray(result.scenarios.weights), strict=True)}


def coverage(result: PlanResult) -> float:
    """Expected share of demand GPU-hours served by commitments (0-1)."""
    w = scenario_weights(result)
    used = sum(w[n] * c["committed_used_gpus"] for n, c in result.scenario_costs.items())
    demand = sum(w[n] * c["demand_gpus"] for n, c in result.scenario_costs.items())
    return used / demand if demand > 0 else 0.0


def expected_hourly_frame(hourly: pd.DataFrame, weights: dict[str, float]) -> pd.DataFrame:
    """Expected (scenario-weighted) USD per hour: ``timestamp, gpu_type, committed_usd, spot_usd, on_demand_usd,
    total_usd`` (the hourly-costs download)."""
    rows = hourly.assign(usd=hourly["usd"] * hourly["scenario"].map(weights).astype(float))
    wide = rows.pivot_table(index=[S.TIMESTAMP, S.GPU_TYPE], columns="category", values="usd", aggfunc="sum",
                            fill_value=0.0)
    wide = wide.reindex(columns=list(COST_CATEGORIES), fill_value=0.0)
    wide.columns = [_COST_KEYS[c] for c in wide.columns]
    wide["total_usd"] = wide.sum(axis=1)
    return wide.reset_index()


def category_compare(base: dict[str, float], current: dict[str, float]) -> pd.DataFrame:
    """``plan, category, usd`` of the base and the what-if plan (for the comparison chart)."""
    rows = [{"plan": name, "category": cat, "usd": figs[_COST_KEYS[cat]]}
            for name, figs in (("base", base), ("what-if", current)) for cat in COST_CATEGORIES]
    return pd.DataFrame(rows)
