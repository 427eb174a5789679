"""Rightsizing: route each team's work to the GPU model that serves it best, before the purchase MILP.

Units: work is measured in **reference-GPU-hours** (hours of one reference GPU, :data:`REFERENCE_GPU`,
an NVIDIA A100); one GPU-hour of model g does ``relative_throughput[g]`` reference-GPU-hours
(``data_samples/gpu_throughput.csv``, each figure citing its public source). Demand frames are in GPUs
per hour (GPU-hours per hour); prices in USD per GPU-hour; costs in USD.

For every (team, workload class) unit (:mod:`optimizer.workloads`) and every GPU model with a throughput
figure, the instance types of that model that fit the class are found (memory per GPU, GPUs per job, fast
interconnect, approvals); a model with none is excluded with the reason. The unit's hourly reference demand
``r_t`` becomes ``r_t / throughput`` GPUs of the model, and its cost there is what a stand-alone plan for
that load-duration curve would cost: commit to the level ``c`` (scanned over the demand's percentiles)
that minimises ``c x hours x commitment rate + spot GPU-hours x spot rate x (1 + rework) + the rest x
on-demand rate``, where spot serves only spot-tolerant classes (never latency-bound ones), at most the
plan's spot share, with the class's checkpoint interval in the rework. Rates are the cheapest per GPU among
the fitting instance types. Time per reference-GPU-hour on one GPU is ``(1 + spot share x rework) /
throughput``.

Choice: with ``speed_priority`` w in [0, 1] the unit goes to the model minimising
``cost^(1-w) x time^w`` (cost per reference-GPU-hour, time per reference-GPU-hour): w = 0 is the cheapest
feasible model, w = 1 the fastest, and the product form makes the trade-off independent of units. A unit
goes whole to one GPU model (commitments pool per model, so splitting a team only pays when one model
runs out, which the catalog does not model).

What the MILP gets: the routed demand (GPUs per GPU model and hour: :meth:`Routing.apply`), the instance
types each model may use (those fitting every unit routed to it) and a per-model spot share cap = the
spot-tolerant share of the model's GPU-hours, at most the plan's cap (:meth:`Routing.plan_config`).
Limitations: peak-TFLOPS ratios overstate the gain of faster GPUs for memory-bound work; the per-unit
stand-alone cost ignores the pooling of commitments across teams (the MILP then does the pooling).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer import catalog as C
from optimizer.inputs import PlanConfig, PlanningError
from optimizer.options import ON_DEMAND, SPOT
from optimizer.plan import Plan, TeamRoute
from optimizer.workloads import WorkloadClass, Workloads
from usage import schema as S

REFERENCE_GPU = "NVIDIA A100"
DEFAULT_THROUGHPUT = C.DATA_DIR / "gpu_throughput.csv"
THROUGHPUT_COLUMNS = ("gpu_model", "relative_throughput", "source")

FAST_INTERCONNECT_PREFIXES = ("p3dn.", "p4d.", "p4de.", "p5.", "p5e.", "p5en.", "p6-", "p6e-",
                              "a2-", "a3-", "a4-", "a4x-")
"""Instance families with NVLink/NVSwitch between their GPUs and EFA-class (or GPUDirect) networking between
instances: AWS P3dn/P4d/P4de/P5/P5e/P5en/P6, GCP A2/A3/A4 (from the providers' instance-type pages)."""

# routing table columns
TEAM = S.TEAM
CLASS = "workload_class"
CLASS_SOURCE = "class_source"
FROM = "from_gpu_types"
GPU_MODEL = "gpu_model"
INSTANCE_TYPES = "instance_types"
THROUGHPUT = "relative_throughput"
REF_HOURS = "reference_gpu_hours"
GPU_HOURS = "gpu_hours"
USD = "expected_usd"
USD_PER_REF = "usd_per_reference_gpu_hour"
SPOT_SHARE = "spot_share"
TIME_PER_REF = "hours_per_reference_gpu_hour"
FLEET_GPUS = "current_gpus"
SPOT_ALLOWED = "spot_allowed"
LATENCY_BOUND = "latency_bound"
CHECKPOINT = "checkpoint_interval_hours"
REASON = "reason"


def short_name(gpu_model: str) -> str:
    """``NVIDIA T4 Tensor Core`` -> ``T4`` (for reasons and charts)."""
    return gpu_model.removeprefix("NVIDIA ").removeprefix("Tesla ").removesuffix(" Tensor Core")


# --- throughput table ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Throughput:
    """Relative training throughput per GPU model (reference GPU = 1.0) with the source of each figure."""

    table: pd.DataFrame
    path: str = "built-in table"

    def get(self, gpu_model: str) -> float | None:
        rows = self.table[self.table["gpu_model"] == gpu_model]
        return None if rows.empty else float(rows["relative_throughput"].iloc[0])

    def of(self, gpu_model: str) -> float:
        value = self.get(gpu_model)
        if value is None:
            raise PlanningError(f"{self.path}: no relative throughput for '{gpu_model}' (fix: add a row "
                                f"'{gpu_model},<throughput vs {REFERENCE_GPU}>,...,<source>' to the table)")
        return value

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.table["gpu_model"])


def load_throughput(path: str | Path | None = None) -> Throughput:
    """Read and check a throughput CSV (``gpu_model, relative_throughput, ..., source``)."""
    path = Path(path) if path is not None else DEFAULT_THROUGHPUT
    name = path.name
    if not path.exists():
        raise S.UsageError(name, "throughput table not found", fix="omit --throughput to use the shipped table")
    table = pd.read_csv(path, dtype={"gpu_model": "string", "source": "string"})
    for col in THROUGHPUT_COLUMNS:
        if col not in table.columns:
            raise S.UsageError(name, "missing column", row=1, column=col,
                               fix=f"the header needs {', '.join(THROUGHPUT_COLUMNS)}")
    values = pd.to_numeric(table["relative_throughput"], errors="coerce")
    for i in range(len(table)):
        row = S.csv_row(i)
        if not (values.iloc[i] > 0 and math.isfinite(values.iloc[i])):
            got = S.shown(table["relative_throughput"].iloc[i])
            raise S.UsageError(name, f"throughput must be a number > 0, got {got}",
                               row=row, column="relative_throughput", fix=f"write the ratio to {REFERENCE_GPU} = 1.0")
        if pd.isna(table["source"].iloc[i]) or not str(table["source"].iloc[i]).strip():
            raise S.UsageError(name, "every figure needs its public source", row=row, column="source",
                               fix="cite the datasheet or benchmark the number comes from")
    dup = table["gpu_model"].duplicated()
    if dup.any():
        row = S.csv_row(int(np.flatnonzero(dup.to_numpy())[0]))
        raise S.UsageError(name, f"'{table['gpu_model'][dup].iloc[0]}' is listed twice", row=row, column="gpu_model",
                           fix="keep one row per GPU model")
    table = table.assign(relative_throughput=values.astype(float))
    return Throughput(table=table, path="built-in table" if path == DEFAULT_THROUGHPUT else str(path))


# --- instance types --------------------------------------------------------------------------------------------
def instance_table(catalog: C.Catalog, config: PlanConfig, throughput: Throughput) -> pd.DataFrame:
    """One row per instance type of the region whose GPU model has a throughput figure and an on-demand price.

    Columns: instance_type, gpu_model, gpu_count, memory_gib (memory per GPU available to the instance:
    fractional-GPU types get their share), fast (NVLink/EFA-class), needs_approval, interruption_bucket and
    per-GPU USD rates ``od`` (on-demand), ``commit`` (cheapest effective rate among the config's options; inf
    if none) and ``spot_price`` (before rework; inf if none).
    """
    rows = catalog.offers(config.region, instance_types=config.instance_types)
    rows = rows[rows[C.GPU_MODEL].isin(throughput.models)]
    per_gpu = rows[C.EFFECTIVE_HOURLY] / rows[C.GPU_COUNT]
    rows = rows.assign(per_gpu=per_gpu)

    def rate(option_mask: pd.Series) -> pd.Series:
        return rows[option_mask].groupby(C.INSTANCE_TYPE)["per_gpu"].min()

    od = rate(rows[C.PURCHASE_OPTION] == ON_DEMAND)
    commit = rate(rows[C.PURCHASE_OPTION].isin(config.options))
    spot = rate(rows[C.PURCHASE_OPTION] == SPOT)
    specs = rows.drop_duplicates(C.INSTANCE_TYPE).set_index(C.INSTANCE_TYPE)
    specs = specs.loc[specs.index.isin(od.index)]
    blocked = set(config.needs_approval) - set(config.approved)
    out = pd.DataFrame({
        C.INSTANCE_TYPE: specs.index,
        GPU_MODEL: specs[C.GPU_MODEL].to_numpy(),
        C.GPU_COUNT: specs[C.GPU_COUNT].to_numpy(dtype=float),
        "memory_gib": (specs[C.GPU_MEMORY] * np.minimum(specs[C.GPU_COUNT], 1.0)).to_numpy(dtype=float),
        "fast": [str(t).startswith(FAST_INTERCONNECT_PREFIXES) for t in specs.index],
        "needs_approval": [t in blocked for t in specs.index],
        C.INTERRUPTION: specs[C.INTERRUPTION].to_numpy(),
        "od": od.reindex(specs.index).to_numpy(dtype=float),
        "commit": commit.reindex(specs.index).fillna(np.inf).to_numpy(dtype=float),
        "spot_price": spot.reindex(specs.index).fillna(np.inf).to_numpy(dtype=float),
    })
    return out.sort_values([GPU_MODEL, C.INSTANCE_TYPE]).reset_index(drop=True)


def fits(instances: pd.DataFrame, cls: WorkloadClass) -> tuple[np.ndarray, np.ndarray]:
    """Which instance types fit the class, and for the others the first requirement they miss.

    A job of k GPUs fits an instance of n GPUs when k <= n (several jobs share a large instance), or when it
    spans whole 8-GPU NVLink nodes (k a multiple of n, n >= 8) over an EFA-class network. A class that needs
    fast interconnect also needs its job's GPUs (up to a full 8-GPU node) inside one NVLink domain.
    """
    n = instances[C.GPU_COUNT].to_numpy()
    k = cls.gpus_per_job
    memory_ok = instances["memory_gib"].to_numpy() >= cls.min_gpu_memory_gib - 1e-9
    fast = instances["fast"].to_numpy(dtype=bool)
    link_ok = (fast & (n >= min(k, 8))) | (not cls.fast_interconnect)
    multiple = np.isclose(np.mod(k, np.where(n >= 1, n, 1.0)), 0.0) & (n >= 8)
    job_ok = (n >= k) | (multiple & fast)
    approval_ok = ~instances["needs_approval"].to_numpy(dtype=bool)
    why = np.full(len(instances), "", dtype=object)
    for mask, text in ((approval_ok, "approval"), (job_ok, "job"), (link_ok, "link"), (memory_ok, "memory")):
        why = np.where(~mask, text, why)
    return memory_ok & link_ok & job_ok & approval_ok, why


def _exclusion(gpu_model: str, rows: pd.DataFrame, why: np.ndarray, cls: WorkloadClass) -> str:
    """One reason a GPU model cannot serve a class (the most permissive failure among its instance types)."""
    name = short_name(gpu_model)
    failures = set(why)
    if failures == {"memory"}:
        return f"{name} has {rows['memory_gib'].max():g} GiB per GPU < {cls.min_gpu_memory_gib:g} GiB"
    if failures <= {"memory", "link"}:
        extra = f" with >= {cls.min_gpu_memory_gib:g} GiB per GPU" if "memory" in failures else ""
        return f"{name} has no NVLink/EFA-class instance{extra}"
    if failures <= {"memory", "link", "job"}:
        return (f"{name}: no instance fits {cls.gpus_per_job}-GPU jobs (largest has {rows[C.GPU_COUNT].max():g} "
                "GPUs; larger jobs need an NVLink/EFA-class type)")
    blocked = ", ".join(rows[C.INSTANCE_TYPE][why == "approval"])
    return f"{name}: {blocked} needs approval"


# --- cost of serving a load-duration curve ---------------------------------------------------------------------
def serve_cost(gpus: np.ndarray, commit: float, od: float, spot: float, spot_share: float) -> tuple[float, float]:
    """Cheapest stand-alone way to serve hourly demand ``gpus`` (GPUs) at per-GPU-hour rates.

    Args:
        gpus: demand per hour (GPUs).
        commit: effective commitment rate per GPU-hour, paid every hour (inf = none).
        od: on-demand rate per GPU-hour.
        spot: spot rate per useful GPU-hour, rework included (inf = not allowed).
        spot_share: at most this share of the demand's GPU-hours on spot.

    Returns:
        (cost in USD, useful GPU-hours served by spot). The cost is piecewise linear in the commitment level,
        with breaks at demand levels and where the demand above the commitment equals the spot allowance;
        the level is the best of 0, the demand's percentiles 0..100 and that spot break (exact up to the
        percentile step).
    """
    total = float(gpus.sum())
    if total <= 0:
        return 0.0, 0.0
    hours = len(gpus)
    levels = np.zeros(1)
    if np.isfinite(commit) and commit < od:
        top = np.sort(gpus)[::-1]
        k = np.arange(1, hours + 1)
        at_cap = (np.cumsum(top) - spot_share * total) / k  # level where sum(max(d - c, 0)) = spot allowance
        below = np.concatenate([top[1:], [0.0]])
        at_cap = at_cap[(at_cap >= below - 1e-9) & (at_cap <= top + 1e-9)]
        levels = np.unique(np.concatenate([[0.0], np.quantile(gpus, np.linspace(0.0, 1.0, 101)),
                                           np.clip(at_cap, 0.0, None)]))
    excess = np.maximum(gpus[None, :] - levels[:, None], 0.0).sum(axis=1)
    on_spot = np.minimum(excess, spot_share * total) if spot < od else np.zeros_like(excess)
    commit_cost = levels * hours * (commit if np.isfinite(commit) else 0.0)
    cost = commit_cost + on_spot * (spot if np.isfinite(spot) else 0.0) + (excess - on_spot) * od
    best = int(np.argmin(cost))
    return float(cost[best]), float(on_spot[best])


# --- routing ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Routing:
    """Where each (team, workload class) unit's work goes, and what the purchase MILP needs from it.

    Attributes:
        speed_priority: the weight used (0 = cheapest, 1 = fastest).
        table: one row per unit: team, workload_class, class_source, from_gpu_types, gpu_model,
            instance_types, relative_throughput, reference_gpu_hours, gpu_hours, expected_usd (stand-alone
            estimate), usd_per_reference_gpu_hour, spot_share, hours_per_reference_gpu_hour, current_gpus
            (mean GPUs the unit uses today), spot_allowed, latency_bound, reason.
        candidates: every (unit, GPU model) with its cost, time and feasibility (for the Pareto sweep).
        assignment: (team, current gpu_type) -> (new gpu_model, factor), factor = old / new throughput.
        instance_types_by_model: instance types each routed GPU model may use (fit every unit routed there).
        spot_share_by_model: per routed GPU model, the spot share cap (0 when all its work is latency-bound).
        checkpoint_by_model: per GPU model with spot-tolerant work, the hours between checkpoints of that work
            (weighted by its GPU-hours; rework is linear in the interval, so this keeps the expected rework).
    """

    speed_priority: float
    table: pd.DataFrame
    candidates: pd.DataFrame
    assignment: tuple[tuple[tuple[str, str], tuple[str, float]], ...]
    instance_types_by_model: tuple[tuple[str, tuple[str, ...]], ...]
    spot_share_by_model: tuple[tuple[str, float], ...]
    checkpoint_by_model: tuple[tuple[str, float], ...] = ()

    def apply(self, frame: pd.DataFrame, value_columns: tuple[str, ...] | list[str]) -> pd.DataFrame:
        """The frame with each (team, gpu_type) moved to its routed GPU model and its values rescaled.

        ``value_columns`` (GPUs per hour: ``gpus`` of usage, ``mean``/quantiles of a forecast) are multiplied
        by old / new throughput and summed per (team, gpu_type, timestamp); a ``model`` column keeps its
        first value; other columns are dropped. Pairs the routing did not see are kept unchanged.
        """
        mapping = dict(self.assignment)
        keys = list(zip(frame[S.TEAM], frame[S.GPU_TYPE], strict=True))
        target = [mapping.get(k, (k[1], 1.0)) for k in keys]
        out = frame[[S.TEAM, S.TIMESTAMP]].copy()
        out[S.GPU_TYPE] = [t[0] for t in target]
        factor = np.array([t[1] for t in target], dtype=float)
        for col in value_columns:
            out[col] = frame[col].to_numpy(dtype=float) * factor
        agg: dict[str, str] = {c: "sum" for c in value_columns}
        if S.MODEL in frame.columns:
            out[S.MODEL] = frame[S.MODEL].to_numpy()
            agg[S.MODEL] = "first"
        out = out.groupby([S.TEAM, S.GPU_TYPE, S.TIMESTAMP], as_index=False, sort=True).agg(agg)
        return out[[S.TEAM, S.GPU_TYPE, S.TIMESTAMP, *agg]]

    def plan_config(self, config: PlanConfig) -> PlanConfig:
        """The plan config restricted to the routed instance types, with per-model spot caps and checkpoints."""
        types = sorted({t for _, ts in self.instance_types_by_model for t in ts})
        shares = dict(config.spot_share_by_model)
        for gpu_model, share in self.spot_share_by_model:
            shares[gpu_model] = min(share, shares.get(gpu_model, 1.0))
        checkpoints = {**dict(config.checkpoint_by_model), **dict(self.checkpoint_by_model)}
        return dataclasses.replace(config, instance_types=tuple(types),
                                   spot_share_by_model=tuple(sorted(shares.items())),
                                   checkpoint_by_model=tuple(sorted(checkpoints.items())))

    def routes(self) -> tuple[TeamRoute, ...]:
        """The routing table as plan.json entries (``instance_types``: the types the plan may buy for it)."""
        allowed = dict(self.instance_types_by_model)
        return tuple(TeamRoute(
            team=str(r[TEAM]), workload_class=str(r[CLASS]), class_source=str(r[CLASS_SOURCE]),
            from_gpu_types=tuple(str(r[FROM]).split(" + ")), gpu_model=str(r[GPU_MODEL]),
            instance_types=allowed[str(r[GPU_MODEL])],
            relative_throughput=float(r[THROUGHPUT]), reference_gpu_hours=round(float(r[REF_HOURS]), 3),
            gpu_hours=round(float(r[GPU_HOURS]), 3), usd_per_reference_gpu_hour=round(float(r[USD_PER_REF]), 6),
            spot_allowed=bool(r[SPOT_ALLOWED]), reason=str(r[REASON])) for _, r in self.table.iterrows())


def reference_demand(demand: pd.DataFrame, workloads: Workloads, catalog: C.Catalog, config: PlanConfig,
                     throughput: Throughput, value_column: str = S.GPUS) -> tuple[pd.DataFrame, dict]:
    """Hourly reference-GPU demand per (team, workload class) unit.

    Returns:
        A wide frame (hours x units, reference GPUs) and, per unit, its class, class source, current GPU
        types and mean current GPUs.
    """
    memory = catalog.offers(config.region).groupby(C.GPU_MODEL)[C.GPU_MEMORY].min()
    frame = demand[[S.TEAM, S.GPU_TYPE, S.TIMESTAMP, value_column]]
    units: dict[tuple[str, str], dict] = {}
    parts = []
    for (team, gpu_type), rows in frame.groupby([S.TEAM, S.GPU_TYPE], sort=True):
        cls, origin = workloads.class_for(str(team), str(gpu_type), float(memory.get(gpu_type, 0.0)))
        key = (str(team), cls.name)
        unit = units.setdefault(key, {"class": cls, "source": origin, "from": [], "gpus": 0.0})
        unit["from"].append(str(gpu_type))
        values = rows[value_column].to_numpy(dtype=float)
        unit["gpus"] += float(values.mean()) if len(values) else 0.0
        parts.append(pd.Series(values * throughput.of(str(gpu_type)), index=pd.DatetimeIndex(rows[S.TIMESTAMP]),
                               name=key))
    if not parts:
        raise PlanningError("no demand to route (fix: give usage or a forecast with at least one team)")
    wide = pd.concat([p.groupby(level=0).sum() for p in parts], axis=1).fillna(0.0)
    wide = wide.T.groupby(level=[0, 1]).sum().T.sort_index()
    return wide, units


def evaluate(demand: pd.DataFrame, workloads: Workloads, catalog: C.Catalog, config: PlanConfig,
             throughput: Throughput | None = None, value_column: str = S.GPUS) -> pd.DataFrame:
    """Cost and time of every (unit, GPU model) pair, feasible or not (``feasible``, ``exclusion``).

    Args:
        demand: frame with team, gpu_type, timestamp and ``value_column`` (GPUs per hour).
        workloads: classes per team.
        catalog: price catalog.
        config: region, commitment options, spot policy and approvals of the plan.
        throughput: relative throughput table (default: the shipped one).
        value_column: the demand column (``gpus`` for usage, ``mean`` for a forecast).
    """
    throughput = throughput or load_throughput()
    wide, units = reference_demand(demand, workloads, catalog, config, throughput, value_column)
    instances = instance_table(catalog, config, throughput)
    records = []
    for key, info in units.items():
        cls: WorkloadClass = info["class"]
        ref = wide[key].to_numpy(dtype=float)
        ok, why = fits(instances, cls)
        interval = cls.checkpoint_interval_hours or config.checkpoint_interval_hours
        for gpu_model, idx in instances.groupby(GPU_MODEL).indices.items():
            thr = throughput.of(gpu_model)
            rows = instances.iloc[idx]
            good = rows[ok[idx]]
            base = {TEAM: key[0], CLASS: cls.name, CLASS_SOURCE: info["source"], FROM: " + ".join(info["from"]),
                    GPU_MODEL: gpu_model, THROUGHPUT: thr, REF_HOURS: float(ref.sum()), FLEET_GPUS: info["gpus"],
                    SPOT_ALLOWED: False, LATENCY_BOUND: cls.latency_bound, CHECKPOINT: interval,
                    "class_spec": cls.describe()}
            if good.empty:
                records.append({**base, "feasible": False, "exclusion": _exclusion(gpu_model, rows, why[idx], cls)})
                continue
            share = config.spot_share_for(gpu_model) if config.allow_spot and cls.may_use_spot else 0.0
            rework = np.array([C.rework_fraction(b, interval, config.restart_overhead_hours)
                               for b in good[C.INTERRUPTION]])
            spot_rates = good["spot_price"].to_numpy() * (1.0 + rework)
            si = int(np.argmin(spot_rates))
            od_i = int(np.argmin(good["od"].to_numpy()))
            co_i = int(np.argmin(good["commit"].to_numpy()))
            spot_rate = float(spot_rates[si]) if share > 0 else math.inf
            gpus = ref / thr
            cost, on_spot = serve_cost(gpus, float(good["commit"].iloc[co_i]), float(good["od"].iloc[od_i]),
                                       spot_rate, share)
            total = float(gpus.sum())
            spot_frac = on_spot / total if total > 0 else 0.0
            best_types = dict.fromkeys([good[C.INSTANCE_TYPE].iloc[co_i], good[C.INSTANCE_TYPE].iloc[od_i]]
                                       + ([good[C.INSTANCE_TYPE].iloc[si]] if on_spot > 0 else []))
            records.append({**base, "feasible": True, "exclusion": "", SPOT_ALLOWED: share > 0,
                            INSTANCE_TYPES: ", ".join(good[C.INSTANCE_TYPE]),
                            "best_instance_types": ", ".join(best_types),
                            GPU_HOURS: total + on_spot * float(rework[si]), USD: cost,
                            USD_PER_REF: cost / float(ref.sum()) if ref.sum() > 0 else float(good["od"].min()) / thr,
                            SPOT_SHARE: spot_frac, TIME_PER_REF: (1.0 + spot_frac * float(rework[si])) / thr})
    out = pd.DataFrame.from_records(records)
    for key, rows in out.groupby([TEAM, CLASS]):
        if not rows["feasible"].any():
            cls = units[key]["class"]
            reasons = "; ".join(rows["exclusion"])
            raise PlanningError(f"{workloads.source}: team '{key[0]}' (class '{cls.name}': {cls.describe()}) fits no "
                                f"instance type in {config.region}: {reasons} (fix: relax the class, approve an "
                                "instance type or choose another region)")
    return out


def choose(candidates: pd.DataFrame, speed_priority: float) -> pd.DataFrame:
    """Per unit, the feasible candidate minimising cost^(1-w) x time^w (ties: cheaper, then faster, then name)."""
    if not 0.0 <= speed_priority <= 1.0:
        raise PlanningError(f"speed priority must be between 0 and 1, got {speed_priority:g} "
                            "(fix: --speed-priority 0 for cheapest, 1 for fastest)")
    feas = candidates[candidates["feasible"]].copy()
    grp = feas.groupby([TEAM, CLASS])
    cost = np.log(np.maximum(feas[USD_PER_REF], 1e-12) / np.maximum(grp[USD_PER_REF].transform("min"), 1e-12))
    time = np.log(feas[TIME_PER_REF] / grp[TIME_PER_REF].transform("min"))
    feas["score"] = ((1.0 - speed_priority) * cost + speed_priority * time).round(12)
    feas = feas.sort_values([TEAM, CLASS, "score", USD_PER_REF, TIME_PER_REF, GPU_MODEL])
    return feas


def _reason(ranked: pd.DataFrame, excluded: pd.DataFrame, speed_priority: float) -> str:
    best = ranked.iloc[0]
    head = ("cheapest feasible" if speed_priority == 0 else "fastest feasible" if speed_priority == 1
            else f"best cost x speed at speed priority {speed_priority:g}")
    text = (f"{head}: {short_name(best[GPU_MODEL])} at {best[USD_PER_REF]:.2f} USD per {short_name(REFERENCE_GPU)}"
            f"-hour, {best[THROUGHPUT]:.2f}x {short_name(REFERENCE_GPU)} speed")
    if len(ranked) > 1:
        nxt = ranked.iloc[1]
        text += (f"; next {short_name(nxt[GPU_MODEL])} at {nxt[USD_PER_REF]:.2f} USD, "
                 f"{nxt[THROUGHPUT]:.2f}x")
    if not excluded.empty:
        text += "; excluded: " + "; ".join(excluded["exclusion"])
    if best[LATENCY_BOUND]:
        text += "; latency-bound: no spot"
    return text


def route(demand: pd.DataFrame, workloads: Workloads, catalog: C.Catalog, config: PlanConfig, *,
          speed_priority: float = 0.0, throughput: Throughput | None = None, value_column: str = S.GPUS,
          candidates: pd.DataFrame | None = None) -> Routing:
    """Route every (team, workload class) unit of ``demand`` to one GPU model.

    Args:
        demand: team, gpu_type, timestamp and ``value_column`` (GPUs per hour): recent usage or a forecast mean.
        workloads: classes per team.
        catalog: price catalog.
        config: the plan's config (region, instance types, options, spot policy, approvals).
        speed_priority: 0 = cheapest per reference-GPU-hour, 1 = fastest, in between = cost^(1-w) x time^w.
        throughput: relative throughput table (default: the shipped one).
        value_column: the demand column.
        candidates: output of :func:`evaluate` for the same inputs and ``throughput`` (the Pareto sweep reuses it).

    Raises:
        PlanningError: a unit fits no instance type, or units routed to one GPU model share no instance type.
    """
    throughput = throughput or load_throughput()
    if candidates is None:
        candidates = evaluate(demand, workloads, catalog, config, throughput, value_column)
    ranked = choose(candidates, speed_priority)
    rows, assignment = [], []
    for key, options in ranked.groupby([TEAM, CLASS], sort=True):
        excluded = candidates[(candidates[TEAM] == key[0]) & (candidates[CLASS] == key[1]) & ~candidates["feasible"]]
        best = options.iloc[0].copy()
        best[REASON] = _reason(options, excluded, speed_priority)
        rows.append(best)
        new_thr = float(best[THROUGHPUT])
        for gpu_type in str(best[FROM]).split(" + "):
            assignment.append(((key[0], gpu_type), (str(best[GPU_MODEL]), throughput.of(gpu_type) / new_thr)))
    table = pd.DataFrame(rows).reset_index(drop=True)
    by_model, shares, checkpoints = [], [], []
    for gpu_model, units in table.groupby(GPU_MODEL, sort=True):
        sets = [set(s.split(", ")) for s in units[INSTANCE_TYPES]]
        common = set.intersection(*sets)
        if not common:
            raise PlanningError(f"teams {', '.join(units[TEAM])} are routed to {gpu_model} but no instance type fits "
                                "all of them (fix: give one of them another workload class or --speed-priority)")
        by_model.append((gpu_model, tuple(sorted(common))))
        hours = (units[REF_HOURS] / units[THROUGHPUT]).to_numpy(dtype=float)  # demand GPU-hours (no rework)
        tolerant = float(hours[units[SPOT_ALLOWED].to_numpy(dtype=bool)].sum())
        share = tolerant / hours.sum() if hours.sum() > 0 else 0.0
        cap = config.spot_share_for(gpu_model) if config.allow_spot else 0.0
        shares.append((gpu_model, round(min(cap, share), 6)))
        if tolerant > 0:
            mask = units[SPOT_ALLOWED].to_numpy(dtype=bool)
            interval = float(np.average(units[CHECKPOINT].to_numpy(dtype=float)[mask], weights=hours[mask]))
            checkpoints.append((gpu_model, round(interval, 6)))
    columns = [TEAM, CLASS, CLASS_SOURCE, FROM, GPU_MODEL, INSTANCE_TYPES, "best_instance_types", THROUGHPUT,
               REF_HOURS, GPU_HOURS, USD, USD_PER_REF, SPOT_SHARE, TIME_PER_REF, FLEET_GPUS, SPOT_ALLOWED,
               LATENCY_BOUND, CHECKPOINT, "class_spec", REASON]
    return Routing(speed_priority=speed_priority, table=table[columns], candidates=candidates,
                   assignment=tuple(sorted(assignment)), instance_types_by_model=tuple(by_model),
                   spot_share_by_model=tuple(shares), checkpoint_by_model=tuple(checkpoints))


def attach_routing(plan: Plan, routing: Routing) -> Plan:
    """The plan with the per-team routing (plan.json ``routing``) and the routing assumptions added."""
    assumptions = {**plan.assumptions, "rightsizing": {
        "speed_priority": routing.speed_priority, "reference_gpu": REFERENCE_GPU,
        "spot_share_by_model": dict(routing.spot_share_by_model),
        "checkpoint_interval_hours_by_model": dict(routing.checkpoint_by_model),
        "instance_types_by_model": {g: list(t) for g, t in routing.instance_types_by_model}}}
    return dataclasses.replace(plan, routing=routing.routes(), assumptions=assumptions)
