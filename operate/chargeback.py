"""Showback/chargeback of a plan's bill to teams, reconciled with the bill to the cent.

The billing period is the plan window, or a part of it (``period``: e.g. one month of a quarter's plan). The
whole window is always billed first, because the spot share caps spot over the window's GPU-hours, and the
period's hours of that bill are then allocated: the chargebacks of consecutive periods add up to the window's
bill. The usage is billed with :func:`optimizer.billing.bill` (the one
serving rule: commitments first, then spot up to its cap, then on-demand), which gives per hour and GPU
model the GPUs served and the USD of each purchase option. Allocation:

* each team's share of an hour's demand of a GPU model is its share of that hour's committed, spot and
  on-demand GPU-hours (serving is pooled, so every team gets the same mix in an hour);
* committed cost is the commitments' effective hourly rate (recurring + upfront amortised over the term,
  as billed); the used part (``committed_used / committed_capacity`` of each hour's committed USD) goes to
  teams by their use (``committed_usd``), the unused part (``unused_commitment_usd``) by the policy:
  ``proportional`` -- to teams in proportion to their committed GPU-hours of that GPU model over the
  period (a GPU model whose commitments nobody used goes to ``central``), or ``central`` -- all to the
  ``central`` row;
* spot and on-demand are passed through;
* untagged usage (team ``unallocated``) stays on its own line;
* idle GPU cost per team, where utilisation is known: the allocated cost of each row times
  ``1 - utilization`` (rows without utilisation are counted as not covered);
* data costs, when data lines are given (``data``: the canonical data-usage frame of
  :mod:`usage.ingest.data_lines`): each team's storage and transfer lines of the billing period (a month
  partly inside the period pro rata by hours, :func:`operate.data_costs.in_period`) in their own columns
  ``storage_usd, transfer_usd, data_usd`` (:data:`DATA_COLUMNS`); untagged lines stay on ``unallocated``, and a
  team with data lines but no GPU-hours gets its own row. The bill then is the GPU bill plus the data lines.

Cents: every column is apportioned with the largest-remainder method so its sum equals the bill's column
rounded to the cent (committed = used + unused; ``data_usd`` = the data lines' total rounded to the cent, of which
``storage_usd`` is the storage total rounded); ``total_usd`` is the row sum of the rounded columns (GPU money +
``data_usd``).
Units: GPU-hours, USD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from optimizer.billing import Bill, bill
from optimizer.plan import Plan
from usage import schema as S

TEAM = "team"
GPU_HOURS = "gpu_hours"
COMMITTED = "committed_usd"
SPOT = "spot_usd"
ON_DEMAND = "on_demand_usd"
UNUSED = "unused_commitment_usd"
TOTAL = "total_usd"
COLUMNS = (TEAM, GPU_HOURS, COMMITTED, SPOT, ON_DEMAND, UNUSED, TOTAL)
"""The chargeback CSV contract (GPU costs only)."""
STORAGE = "storage_usd"
TRANSFER = "transfer_usd"
DATA = "data_usd"
DATA_COLUMNS = (TEAM, GPU_HOURS, COMMITTED, SPOT, ON_DEMAND, UNUSED, STORAGE, TRANSFER, DATA, TOTAL)
"""The chargeback CSV contract with data costs: ``total_usd`` = GPU money + ``data_usd``."""
MONEY = (COMMITTED, SPOT, ON_DEMAND, UNUSED)
CENTRAL = "central"
UNALLOCATED = S.UNALLOCATED_TEAM
POLICIES = ("proportional", "central")
SERVED_GPU_HOURS = ("committed_gpu_hours", "spot_gpu_hours", "on_demand_gpu_hours")
"""GPU-hours of each team and GPU type served by commitments, spot and on-demand (``Chargeback.detail``)."""
IDLE_COLUMNS = (TEAM, "utilization_known_gpu_hours", "idle_gpu_hours", "idle_usd", "mean_utilization")


@dataclass(frozen=True)
class Chargeback:
    """The allocation and what it reconciles with.

    Attributes:
        table: one row per team (+ ``central``), columns :data:`COLUMNS`, money rounded to cents.
        detail: unrounded USD per team and GPU type (same money columns) for drill-down, with the GPU-hours
            served by each purchase option (:data:`SERVED_GPU_HOURS`).
        idle: per team ``utilization_known_gpu_hours, idle_gpu_hours, idle_usd, mean_utilization``; empty when
            the usage has no utilisation.
        bill: the plan billed on the usage (the numbers the table reconciles with).
        commitment: per GPU model ``capacity_gpu_hours, used_gpu_hours, demand_gpu_hours, utilization,
            coverage`` (utilisation = used / capacity, coverage = used / demand).
        policy: the unused-commitment policy.
        notes: what the allocation could not do, one line each.
        data: the data lines of the billing period (pro rata), or None when no data lines were given (then the
            table has :data:`COLUMNS`, else :data:`DATA_COLUMNS`).
    """

    table: pd.DataFrame
    detail: pd.DataFrame
    idle: pd.DataFrame
    bill: Bill
    commitment: pd.DataFrame
    policy: str
    notes: tuple[str, ...] = ()
    data: pd.DataFrame | None = None

    def reconciliation(self) -> dict[str, float]:
        """Bill column (cents) vs allocated column sum, per purchase option and in total."""
        t = self.bill.totals()
        if self.data is not None:
            data_c = int(round(float(self.data["cost_usd"].sum()) * 100))
            gpu = self._gpu_reconciliation(t)
            gpu_total = round(t["total_usd"], 2)
            return {**gpu, "bill_gpu_usd": gpu_total, "bill_data_usd": data_c / 100.0,
                    "allocated_data_usd": round(float(self.table[DATA].sum()), 2),
                    "bill_total_usd": round(gpu_total + data_c / 100.0, 2),
                    "allocated_total_usd": round(float(self.table[TOTAL].sum()), 2)}
        return self._gpu_reconciliation(t)

    def _gpu_reconciliation(self, t: dict[str, float]) -> dict[str, float]:
        allocated_committed = float(self.table[COMMITTED].sum() + self.table[UNUSED].sum())
        return {"bill_committed_usd": round(t["committed_usd"], 2), "allocated_committed_usd": round(
                    allocated_committed, 2),
                "bill_spot_usd": round(t["spot_usd"], 2), "allocated_spot_usd": round(float(self.table[SPOT].sum()), 2),
                "bill_on_demand_usd": round(t["on_demand_usd"], 2),
                "allocated_on_demand_usd": round(float(self.table[ON_DEMAND].sum()), 2),
                "bill_total_usd": round(t["total_usd"], 2), "allocated_total_usd": round(float(self.table[TOTAL].sum()),
                                                                                        2)}


def apportion_cents(values: np.ndarray, target_cents: int) -> np.ndarray:
    """Integer cents per entry summing to ``target_cents``, each as close to ``values`` (USD) as possible.

    Largest-remainder method: floor every entry, then give the missing cents to the largest remainders
    (or take surplus cents from the smallest remainders of non-zero entries).
    """
    cents = np.asarray(values, dtype=float) * 100.0
    floors = np.floor(cents + 1e-9)
    rem = cents - floors
    out = floors.astype(np.int64)
    k = int(target_cents - out.sum())
    if k > 0:
        order = np.argsort(-rem, kind="stable")
        for i in range(k):
            out[order[i % len(order)]] += 1
    elif k < 0:
        order = [i for i in np.argsort(rem, kind="stable") if out[i] > 0]
        for i in range(-k):
            out[order[i % len(order)]] -= 1
    return out


def billing_period(plan: Plan, period: str | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[start, end)`` of a billing period within the plan window: None = the whole window, ``YYYY-MM`` = that
    calendar month (UTC) clipped to the window, or ``START/END`` (ISO dates or hours, end exclusive).

    Raises:
        ValueError: a period that cannot be parsed or does not overlap the plan window (one line, with the fix).
    """
    if period is None or not period.strip():
        return plan.window_start, plan.window_end
    text = period.strip()
    try:
        if "/" in text:
            a, b = (pd.Timestamp(x.strip()) for x in text.split("/", 1))
        else:
            month = pd.Period(text, freq="M")
            a, b = month.start_time, (month + 1).start_time
    except ValueError as exc:
        raise ValueError(f"billing period '{text}' is not a month or a range (fix: --period 2025-11 or "
                         "--period 2025-11-01/2025-11-16)") from exc
    def like_window(t: pd.Timestamp) -> pd.Timestamp:   # UTC, with or without a zone as the plan's window
        t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
        return t if plan.window_start.tzinfo is not None else t.tz_localize(None)

    a, b = like_window(a), like_window(b)
    start, end = max(a, plan.window_start), min(b, plan.window_end)
    if start >= end:
        raise ValueError(f"billing period '{text}' is outside the plan window {plan.window_start:%Y-%m-%d %H:%M} to "
                         f"{plan.window_end:%Y-%m-%d %H:%M} UTC (fix: choose a period inside it)")
    return start, end


def require_usage_in_period(usage: pd.DataFrame, plan: Plan, period: str | None = None) -> None:
    """Refuse a chargeback whose usage has no GPU-hours in the billing period: it would charge nothing but the
    unused commitments, all to ``central``, and look like a result.

    Raises:
        ValueError: one line naming the usage's span, the billing period and the fix.
    """
    p_start, p_end = billing_period(plan, period)
    ts = usage[S.TIMESTAMP]
    if ((ts >= p_start) & (ts < p_end) & (usage[S.GPUS] > 0)).any():
        return
    span = f"{ts.min():%Y-%m-%d %H:%M} to {ts.max():%Y-%m-%d %H:%M} UTC" if len(usage) else "no rows"
    raise ValueError(f"the usage ({span}) has no GPU-hours in the billing period {p_start:%Y-%m-%d %H:%M} to "
                     f"{p_end:%Y-%m-%d %H:%M} UTC of the plan (fix: pass the usage of the plan window, or the "
                     "plan.json made for this usage's period)")


def allocate(usage: pd.DataFrame, plan: Plan, unused_policy: str = "proportional",
             period: str | None = None, data: pd.DataFrame | None = None) -> Chargeback:
    """Bill ``usage`` under ``plan`` and allocate the bill to teams (see the module docstring).

    Args:
        usage: canonical usage (``timestamp, team, gpu_type, gpus`` + optional ``utilization``); rows outside
            the plan window are ignored.
        plan: the purchase plan in force.
        unused_policy: ``proportional`` or ``central``.
        period: the billing period within the window (:func:`billing_period`); None = the whole window.
        data: data lines (canonical data-usage frame) to charge beside the GPU costs; None = GPU costs only.

    Raises:
        ValueError: unknown policy or bad period. ``optimizer.billing.BillingError``: a GPU model the plan
            cannot price.
    """
    if unused_policy not in POLICIES:
        raise ValueError(f"unknown unused-commitment policy '{unused_policy}' (fix: choose {' or '.join(POLICIES)})")
    p_start, p_end = billing_period(plan, period)
    inside = usage[(usage[S.TIMESTAMP] >= plan.window_start) & (usage[S.TIMESTAMP] < plan.window_end)]
    inside = inside.astype({S.GPUS: float, S.TEAM: str, S.GPU_TYPE: str})
    the_bill = bill(plan, inside)
    if (p_start, p_end) != (plan.window_start, plan.window_end):
        keep = (the_bill.hourly[S.TIMESTAMP] >= p_start) & (the_bill.hourly[S.TIMESTAMP] < p_end)
        the_bill = Bill(hourly=the_bill.hourly[keep].reset_index(drop=True))
        inside = inside[(inside[S.TIMESTAMP] >= p_start) & (inside[S.TIMESTAMP] < p_end)]
    h = the_bill.hourly
    cap = h["committed_capacity_gpus"].to_numpy()
    used = h["committed_used_gpus"].to_numpy()
    used_frac = np.divide(used, cap, out=np.zeros_like(cap), where=cap > 0)
    hourly = pd.DataFrame({
        S.TIMESTAMP: h[S.TIMESTAMP], S.GPU_TYPE: h[S.GPU_TYPE], "demand": h["demand_gpus"],
        "c_used_gpus": used, "c_used_usd": h["committed_usd"].to_numpy() * used_frac,
        "c_unused_usd": h["committed_usd"].to_numpy() * (1.0 - used_frac),
        "spot_usd_h": h["spot_usd"], "od_usd_h": h["on_demand_usd"], "spot_gpus_h": h["spot_gpus"],
        "od_gpus_h": h["on_demand_gpus"]})
    cols = [S.TIMESTAMP, S.TEAM, S.GPU_TYPE, S.GPUS] + ([S.UTILIZATION] if S.UTILIZATION in inside.columns else [])
    rows = inside[cols].merge(hourly, on=[S.TIMESTAMP, S.GPU_TYPE], how="left")
    demand = rows["demand"].to_numpy()
    share = np.divide(rows[S.GPUS].to_numpy(dtype=float), demand, out=np.zeros(len(rows)), where=demand > 0)
    rows[COMMITTED] = share * rows["c_used_usd"].to_numpy()
    rows["committed_gpu_hours"] = share * rows["c_used_gpus"].to_numpy()
    rows[SPOT] = share * rows["spot_usd_h"].to_numpy()
    rows[ON_DEMAND] = share * rows["od_usd_h"].to_numpy()
    rows["spot_gpu_hours"] = share * rows["spot_gpus_h"].to_numpy()
    rows["on_demand_gpu_hours"] = share * rows["od_gpus_h"].to_numpy()

    notes: list[str] = []
    keys = [S.TEAM, S.GPU_TYPE]
    detail = rows.groupby(keys, as_index=False)[[S.GPUS, COMMITTED, SPOT, ON_DEMAND, *SERVED_GPU_HOURS]].sum()
    detail = detail.rename(columns={S.GPUS: GPU_HOURS})
    detail[UNUSED] = 0.0
    unused_by_model = hourly.groupby(S.GPU_TYPE)["c_unused_usd"].sum()
    central = 0.0
    for gpu_model, unused in unused_by_model.items():
        if unused <= 0:
            continue
        mask = (detail[S.GPU_TYPE] == gpu_model).to_numpy()
        use = detail.loc[mask, "committed_gpu_hours"].to_numpy()
        if unused_policy == "central" or use.sum() <= 0:
            central += unused
            if unused_policy != "central":
                notes.append(f"nobody used the {gpu_model} commitments: {unused:,.2f} USD unused goes to '{CENTRAL}'")
            continue
        detail.loc[mask, UNUSED] = unused * use / use.sum()

    per_team = detail.groupby(TEAM)[[GPU_HOURS, *MONEY]].sum()
    if central > 0:
        per_team.loc[CENTRAL] = [0.0, 0.0, 0.0, 0.0, central]
    money = list(MONEY)
    period_data = None
    if data is not None:
        from operate.data_costs import in_period
        from operate.data_costs import per_team as data_per_team

        period_data = in_period(data, p_start, p_end)
        d = data_per_team(period_data).set_index(TEAM)[[STORAGE, TRANSFER]]
        per_team = per_team.join(d, how="outer").astype(float).fillna(0.0)
        money += [STORAGE, TRANSFER]
    order = sorted(per_team.index, key=lambda t: (t in (UNALLOCATED, CENTRAL), t == CENTRAL,
                                                   -float(per_team.loc[t, money].sum()), t))
    per_team = per_team.loc[order]
    totals = the_bill.totals()
    committed_c = int(round(totals["committed_usd"] * 100))
    unused_c = int(round(float(unused_by_model.sum()) * 100))
    targets = {COMMITTED: committed_c - unused_c, UNUSED: unused_c,
               SPOT: int(round(totals["spot_usd"] * 100)), ON_DEMAND: int(round(totals["on_demand_usd"] * 100))}
    if period_data is not None:
        data_c = int(round(float(period_data["cost_usd"].sum()) * 100))
        storage_c = int(round(float(per_team[STORAGE].sum()) * 100))
        targets[STORAGE], targets[TRANSFER] = storage_c, data_c - storage_c
    table = pd.DataFrame({TEAM: per_team.index, GPU_HOURS: per_team[GPU_HOURS].round(3).to_numpy()})
    cents_total = np.zeros(len(per_team), dtype=np.int64)
    for col in money:
        cents = apportion_cents(per_team[col].to_numpy(), targets[col]) if len(per_team) else np.zeros(0, np.int64)
        cents_total += cents
        table[col] = cents / 100.0
    table[TOTAL] = cents_total / 100.0
    if period_data is not None:
        table[DATA] = ((table[STORAGE] * 100).round() + (table[TRANSFER] * 100).round()) / 100.0
    table = table[list(COLUMNS if period_data is None else DATA_COLUMNS)].reset_index(drop=True)
    idle = _idle(rows, inside, notes)
    return Chargeback(table=table, detail=detail, idle=idle, bill=the_bill, commitment=commitment_stats(the_bill),
                      policy=unused_policy, notes=tuple(notes), data=period_data)


def _idle(rows: pd.DataFrame, inside: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    if S.UTILIZATION not in rows.columns:
        notes.append("the usage has no utilization column: idle GPU cost is unavailable")
        return pd.DataFrame(columns=list(IDLE_COLUMNS))
    if rows[S.UTILIZATION].isna().all():
        notes.append("the usage has a utilization column but no values in the billing period: idle GPU cost is "
                     "unavailable")
        return pd.DataFrame(columns=list(IDLE_COLUMNS))
    util = rows[S.UTILIZATION]
    known = util.notna() & (rows[S.GPUS] > 0)
    cost = rows[COMMITTED] + rows[SPOT] + rows[ON_DEMAND]
    frame = pd.DataFrame({
        TEAM: rows[S.TEAM],
        "utilization_known_gpu_hours": np.where(known, rows[S.GPUS], 0.0),
        "idle_gpu_hours": np.where(known, rows[S.GPUS] * (1.0 - util.fillna(0.0)), 0.0),
        "idle_usd": np.where(known, cost * (1.0 - util.fillna(0.0)), 0.0),
        "busy": np.where(known, rows[S.GPUS] * util.fillna(0.0), 0.0)})
    out = frame.groupby(TEAM, as_index=False).sum()
    out["mean_utilization"] = np.divide(out["busy"], out["utilization_known_gpu_hours"],
                                        out=np.full(len(out), np.nan), where=out["utilization_known_gpu_hours"] > 0)
    missing = float(rows.loc[~known & (rows[S.GPUS] > 0), S.GPUS].sum())
    if missing > 0:
        notes.append(f"{missing:,.1f} GPU-hours have no utilization: their idle cost is not counted")
    return out.drop(columns="busy").sort_values("idle_usd", ascending=False).reset_index(drop=True)[list(IDLE_COLUMNS)]


def commitment_stats(the_bill: Bill) -> pd.DataFrame:
    """Commitment utilisation (used / capacity) and coverage (used / demand) per GPU model and in total."""
    g = the_bill.hourly.groupby(S.GPU_TYPE)[["committed_capacity_gpus", "committed_used_gpus", "demand_gpus",
                                             "committed_usd"]].sum()
    g.loc["all GPU models"] = g.sum()
    out = pd.DataFrame({S.GPU_TYPE: g.index, "capacity_gpu_hours": g["committed_capacity_gpus"].to_numpy(),
                        "used_gpu_hours": g["committed_used_gpus"].to_numpy(),
                        "demand_gpu_hours": g["demand_gpus"].to_numpy(),
                        "committed_usd": g["committed_usd"].to_numpy()})
    cap, used, dem = (out[c].to_numpy() for c in ("capacity_gpu_hours", "used_gpu_hours", "demand_gpu_hours"))
    out["utilization"] = np.divide(used, cap, out=np.full(len(out), np.nan), where=cap > 0)
    out["coverage"] = np.divide(used, dem, out=np.full(len(out), np.nan), where=dem > 0)
    return out
