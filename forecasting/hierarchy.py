"""Coherent forecasts for the organisation: team x GPU type -> team -> GPU type -> total, reconciled.

Units: every series, forecast and error is in GPUs in use averaged over an hour (= GPU-hours per hour);
horizons and hold-outs are in hours; timestamps are naive-UTC hour starts.

The organisation is a *grouped* structure, not a tree: a team can use several GPU types and a GPU type
serves several teams, so the bottom series ``team|gpu_type`` sum both to their team and to their GPU type,
and the teams and the GPU types each sum to the total. Levels, top to bottom:

=================  =============================  =============================
level              key                            series
=================  =============================  =============================
``total``          ``total``                      all GPUs of the organisation
``gpu_type``       ``NVIDIA H100``                one GPU model, all teams
``team``           ``llm-pretrain``               one team, all GPU models
``team/gpu_type``  ``llm-pretrain|NVIDIA H100``   the canonical usage series
=================  =============================  =============================

How it works:

1. :func:`build_hierarchy` sums the usage of every node per hour (absent rows count as 0 GPUs inside a
   node's span; a node starts when its first member starts). Nodes with the same members (a team with
   one GPU type is its bottom series; with one GPU type in the data the GPU-type node is the total) are
   one series: forecast and reconciled once, reported under every name.
2. Every distinct series is forecast independently by :func:`forecasting.engine.forecast_long` (same
   config, same candidates, CV choice and conformal ranges as the team forecasts): the *base* forecasts.
3. The base means are reconciled with hierarchicalforecast's ``MinTrace`` (``wls_var`` by default: weights
   from the diagonal of the nodes' CV error variances; ``wls_var_total``, the same with the total's error
   variance scaled towards zero so the total keeps its own forecast; ``mint_shrink``, ``wls_struct``,
   ``ols``) or ``BottomUp``: ``y_tilde = S P y_hat``. The
   methods that need residuals (``wls_var_total``, ``wls_var``, ``mint_shrink``) take them from the
   engine's rolling-origin CV errors of every node, aligned by CV window (counted from the end) and
   step; these are out-of-sample multi-step errors, the ones the ``W_h`` of MinTrace is about. With
   ``nonnegative`` (default), the hours whose reconciled bottom series would be negative are solved again
   as MinTrace's non-negative quadratic programme.
4. Quantiles (conformal, as in the engine): reconciliation is linear and actual demand is coherent, so
   the CV errors the reconciled forecasts would have made are ``S P e`` (``e``: the nodes' base CV
   errors). Each node's p05..p95 are its reconciled mean plus the quantiles of those errors, calibrated
   like the engine's (``ForecastConfig.calibration``: by default half the node's own errors, half all
   nodes' errors pooled after dividing by each node's hour-to-hour noise scale), clipped at 0 and sorted.
   On the Alibaba GPU-spec trace the pooled half lifted the reconciled bottom series' p10-p90 coverage
   from 60% to 78% (last 168 h held out; base forecasts: 81%). (``quantiles="shift"`` instead moves each
   node's base quantiles by its reconciliation adjustment; it is also the fallback when the series share too
   few CV samples.)

What holds:

* Means are coherent: every aggregate's reconciled mean equals the sum of its bottom series' reconciled
  means (to floating-point precision, well within 1e-6 GPUs) and is never negative.
* Quantiles are ordered (p05 <= p10 <= p50 <= p90 <= p95) and never negative at every node, but they are
  *not* additive and are not forced to be: the p90 of a sum is not the sum of the p90s (teams do not all
  peak together), so ``total.p90 <= sum(team.p90)`` is expected. Each node's band is its own conformal
  band around its reconciled mean. For joint scenarios across teams use
  :func:`forecasting.engine.sample_paths` on the bottom series.

:func:`hierarchy_holdout` measures MAE, MASE and p10-p90 coverage per level on held-out hours for the base
forecasts and each reconciliation method.

Which method. ``wls_var`` is the default (2026-11-27, ``benchmarks/hierarchy_accuracy.py``; docs/benchmarks.md).
No method is no worse than the base forecasts at every level in every hold-out, so the default is the one that
is best on average on hold-outs that were not used to report: 24 weekly hold-outs of the synthetic
organisation, 3 to 26 weeks back. Reconciled MAE / base MAE there, worst and geometric mean, at total / gpu_type /
team / team-gpu:

* ``wls_var``: worst 2.823 / 1.147 / 1.211 / 1.167, mean **0.904 / 0.896 / 0.982 / 0.999**;
* ``wls_var_total``: worst 1.000 / 2.170 / 1.866 / 1.695, mean 1.000 / 1.042 / 1.150 / 1.152;
* ``wls_struct``: worst 2.683 / 1.223 / 1.148 / 1.104, mean 0.878 / 0.947 / 1.002 / 1.022;
* ``bottom_up``: worst 3.506 / 1.278 / 1.088 / 1.000, mean 1.052 / 0.971 / 0.989 / 1.000.

On the 12 reported hold-outs (the last 3 weeks of Helios, Alibaba per QoS class, Alibaba per GPU-model
constraint grouped under the catalog GPU model it is billed on, and the synthetic org):

* ``wls_var``: worst 2.900 / 1.089 / 1.017 / 1.017, mean 1.153 / 0.967 / 0.984 / 0.992;
* ``wls_var_total``: worst 1.000 / 1.045 / 1.042 / 1.042, mean 1.000 / 0.906 / 0.981 / 0.995;
* ``bottom_up``: worst 3.695 / 1.144 / 1.000 / 1.000, mean 1.240 / 1.012 / 0.993 / 1.000.

``wls_var_total`` was the default for a while: it was chosen on those 12 hold-outs, where the synthetic org's own
total forecast happened to beat the sum of its teams by far (``wls_var`` 2.9x the base total's MAE in one
week). On the 24 earlier weeks the total's own forecast is often the worse one, and pinning it pushes its
error onto the teams (team MAE up to 1.87x). The CV errors do not tell the two cases apart: the total-vs-sum
CV ratio ranged 0.53-1.48 and did not track the hold-outs. ``wls_var`` gives up a total that happens to be
good, and is better than the base forecasts on average at every level of the tuning weeks. Choosing the method
or the total's weight per run from the CV errors was tried and was worse.

A series with fewer than 2 CV errors (one that started hours or days before the forecast) gets a borrowed error
variance for the diagonal methods (:func:`fill_young_variances`; a note says so). Before, it sent the whole
hierarchy to ``wls_struct``, in 3 of the 24 tuning hold-outs. Borrowing moved ``wls_var``'s tuning means from
0.901 / 0.913 / 0.992 / 1.008 to the figures above. ``mint_shrink`` needs a full covariance and still falls back.

Earlier measurements (before SES08; synthetic org 168 h x 6 weekly origins and 720 h x 3 monthly origins,
Helios 168 h x 5 origins 48 h apart; geometric mean over origins of reconciled MAE / base MAE at total /
gpu_type / team / team-gpu):

* ``wls_var``: 1.20 / 0.89 / 0.96 / 0.96 (synthetic 168 h), 0.84 / 0.92 / 0.97 / 0.99 (synthetic 720 h),
  0.90 / 0.90 / 1.00 / 1.00 (Helios);
* ``mint_shrink``: 1.15 / 0.98 / 1.08 / 1.12, 0.86 / 0.89 / 1.04 / 1.05, 0.97 / 0.97 / 1.02 / 1.02;
* ``wls_struct``: 1.26 / 0.96 / 0.99 / 1.00, 0.85 / 0.97 / 0.99 / 1.02, 0.92 / 0.92 / 1.01 / 1.01;
* ``ols``: 1.06 / 1.00 / 1.06 / 1.08, 0.91 / 1.05 / 1.05 / 1.08, 0.99 / 0.99 / 1.03 / 1.03;
* ``bottom_up``: 1.41 / 1.00 / 1.00 / 1.00, 0.85 / 0.95 / 0.99 / 1.00, 0.93 / 0.93 / 1.00 / 1.00.

No method was no worse than the base forecasts at every level in every case. At the synthetic 168-hour total
the base forecast of the total is far better than the sum of the team forecasts (bottom-up has 1.4x its MAE)
and every coherent method pulls it towards that sum. ``wls_var`` was the default then: below the total it was
better than or within 0.1% of the base forecasts in every case, and it had the best total in two of three.
``mint_shrink``'s full error covariance, estimated from overlapping CV windows, overfits single events (an
evaluation campaign inside the CV windows moved every H100 team's forecast) and lost 4-12% at the team levels
of the synthetic organisation.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from forecasting.engine import (
    QUANTILES,
    ForecastConfig,
    LongForecast,
    Progress,
    conformal_quantiles,
    forecast_long,
    lead_growth,
    noise_scale,
    seasonal_scale,
)
from usage import schema as S

LEVEL = "level"
KEY = "key"
BASE_MEAN = "base_mean"
TOTAL = "total"
LEVEL_TOTAL, LEVEL_GPU, LEVEL_TEAM, LEVEL_BOTTOM = "total", "gpu_type", "team", "team/gpu_type"
LEVELS = (LEVEL_TOTAL, LEVEL_GPU, LEVEL_TEAM, LEVEL_BOTTOM)
"""Hierarchy levels, top to bottom."""
METHODS = ("wls_var", "wls_var_total", "mint_shrink", "wls_struct", "ols", "bottom_up")
"""Reconciliation methods: MinTrace variants (hierarchicalforecast) and bottom-up."""
RESIDUAL_METHODS = ("wls_var_total", "wls_var", "mint_shrink")
"""Methods whose weights come from the nodes' CV errors."""
DIAGONAL_METHODS = ("wls_var", "wls_var_total")
"""Residual methods that use only each node's error variance (young series can borrow one, see
:func:`fill_young_variances`)."""
FALLBACK_METHOD = "wls_struct"
PIN_FACTOR = 1e-3
"""``wls_var_total`` scales the top node's CV errors by this factor: a 1e-6 times smaller variance, so MinTrace
moves the total by about a millionth of its adjustment and puts the rest on the nodes below."""
QUANTILE_METHODS = ("conformal", "shift")
MIN_CONFORMAL_ERRORS = 20
"""Fewest common CV samples for conformal ranges of the reconciled forecasts (else: shifted base ranges)."""
SEASON = 24


@dataclass(frozen=True)
class HierarchyConfig:
    """How base forecasts are reconciled.

    Attributes:
        method: one of :data:`METHODS`. ``wls_var`` (default) is MinTrace with the diagonal of the nodes' CV
            error variances; ``wls_var_total`` is ``wls_var`` with the organisation total kept at its own base
            forecast (its variance set near zero), so the total is never worse than unreconciled and the nodes
            below absorb the difference; ``mint_shrink`` uses their shrunk covariance
            (Wickramasuriya et al. 2019);
            ``wls_struct`` weights by the number of bottom series under each node; ``ols`` equally;
            ``bottom_up`` sums the bottom forecasts. Measured accuracy is in the module docstring.
        nonnegative: re-solve hours whose reconciled bottom forecasts would be negative as a
            non-negative quadratic programme (MinTrace ``nonnegative=True``); otherwise negative
            reconciled means are kept (and noted).
        mint_shr_ridge: ridge added to the shrunk covariance (MinTrace's numeric protection).
        quantiles: ``conformal`` (default): p05..p95 of each node from the empirical quantiles of the CV
            errors the *reconciled* forecasts would have made (``S P e``), like the engine's ranges;
            ``shift``: the node's base quantiles moved by its reconciliation adjustment.
    """

    method: str = "wls_var"
    nonnegative: bool = True
    mint_shr_ridge: float = 2e-8
    quantiles: str = "conformal"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown reconciliation method '{self.method}' (choose from {', '.join(METHODS)})")
        if self.quantiles not in QUANTILE_METHODS:
            raise ValueError(f"unknown quantile method '{self.quantiles}' (choose from {', '.join(QUANTILE_METHODS)})")


@dataclass(frozen=True)
class Hierarchy:
    """The aggregation structure of a usage frame and the series of its distinct nodes.

    Attributes:
        nodes: one row per node, top to bottom: ``level, key, team, gpu_type, unique_id, series, members``;
            ``unique_id`` names the node, ``series`` the distinct series it is forecast and reconciled as
            (equal to ``unique_id`` unless another node has the same members), ``members`` its number of
            bottom series. ``team``/``gpu_type`` are None where the node aggregates over them.
        S: summing matrix of every node: index ``unique_id`` (the order of ``nodes``), columns the bottom
            ``unique_id`` values, entries 0/1.
        tags: level -> ``unique_id`` values of its nodes (hierarchicalforecast's ``tags``).
        long: ``unique_id, ds, y`` of every distinct series (GPUs per hour), the engine's input.
    """

    nodes: pd.DataFrame
    S: pd.DataFrame
    tags: dict[str, np.ndarray]
    long: pd.DataFrame

    @property
    def distinct(self) -> list[str]:
        """Distinct series in summing-matrix order (aggregates first, then every bottom series)."""
        bottom = self.nodes.loc[self.nodes[LEVEL] == LEVEL_BOTTOM, S.UID].tolist()
        aggregates = [u for u in dict.fromkeys(self.nodes["series"]) if u not in set(bottom)]
        return aggregates + bottom

    def summing_matrix(self) -> np.ndarray:
        """The summing matrix of the distinct series (rows :attr:`distinct`, columns bottom series)."""
        return self.S.loc[self.distinct].to_numpy(dtype=float)


@dataclass(frozen=True)
class HierarchicalForecast:
    """Reconciled forecasts of every node.

    Attributes:
        forecast: ``level, key, team, gpu_type, timestamp, mean, p05, p10, p50, p90, p95, base_mean, model``
            (GPUs per hour): reconciled mean and quantiles, the unreconciled mean, the node's base model.
        S: summing matrix (see :class:`Hierarchy`).
        tags: level -> node ``unique_id`` values.
        hierarchy: the structure and the aggregated history.
        base: the engine's forecasts of the distinct series (selection, CV errors, notes).
        method: the reconciliation method used (a fallback is noted in ``notes``).
        notes: what was changed or could not be done, one line each.
    """

    forecast: pd.DataFrame
    S: pd.DataFrame
    tags: dict[str, np.ndarray]
    hierarchy: Hierarchy
    base: LongForecast
    method: str
    notes: tuple[str, ...] = ()


# --- structure ----------------------------------------------------------------------------------
def _node_id(level: str, key: str) -> str:
    if level == LEVEL_TOTAL:
        return TOTAL
    if level == LEVEL_BOTTOM:
        return key
    return f"{level}={S.escape_key(key)}"


def build_hierarchy(usage: pd.DataFrame) -> Hierarchy:
    """Aggregate a canonical usage frame to every node of the team x GPU-type hierarchy.

    Args:
        usage: canonical usage frame (``timestamp, team, gpu_type, gpus``; see ``validate_usage``).

    Returns:
        The :class:`Hierarchy`: nodes, summing matrix, tags and the hourly series of the distinct nodes.
        Bottom series keep their own rows; an aggregate is the hourly sum of its members from the first
        hour any member reports to the data's last hour (absent member rows count as 0 GPUs).
    """
    if usage.empty:
        raise ValueError("no usage rows to build a hierarchy from")
    bottom_long = S.to_long(usage)
    wide = bottom_long.groupby([S.DS, S.UID])[S.Y].sum().unstack(S.UID)
    hours = pd.date_range(wide.index.min(), wide.index.max(), freq="h")
    wide = wide.reindex(hours)
    bottoms = sorted(wide.columns)
    wide = wide[bottoms]
    team_of, gpu_of = (dict(zip(bottoms, part, strict=True)) for part in S.split_uid(pd.Series(bottoms)))

    specs: list[tuple[str, str, str | None, str | None, list[str]]] = [(LEVEL_TOTAL, TOTAL, None, None, bottoms)]
    for gpu in sorted(set(gpu_of.values())):
        specs.append((LEVEL_GPU, gpu, None, gpu, [b for b in bottoms if gpu_of[b] == gpu]))
    for team in sorted(set(team_of.values())):
        specs.append((LEVEL_TEAM, team, team, None, [b for b in bottoms if team_of[b] == team]))
    for b in bottoms:
        specs.append((LEVEL_BOTTOM, b, team_of[b], gpu_of[b], [b]))

    rep: dict[frozenset[str], str] = {frozenset([b]): b for b in bottoms}
    rows, s_rows = [], []
    for level, key, team, gpu, members in specs:
        uid = _node_id(level, key)
        series = rep.setdefault(frozenset(members), uid)
        rows.append({LEVEL: level, KEY: key, S.TEAM: team, S.GPU_TYPE: gpu, S.UID: uid, "series": series,
                     "members": len(members)})
        s_rows.append(np.isin(bottoms, members).astype(int))
    nodes = pd.DataFrame(rows)
    summing = pd.DataFrame(np.vstack(s_rows), index=pd.Index(nodes[S.UID], name=S.UID), columns=bottoms)
    tags = {level: nodes.loc[nodes[LEVEL] == level, S.UID].to_numpy() for level in LEVELS}

    parts = [bottom_long]
    values = wide.to_numpy(dtype=float)
    present = ~np.isnan(values)
    filled = np.nan_to_num(values, nan=0.0)
    for uid in dict.fromkeys(nodes["series"]):
        if uid in team_of:
            continue
        cols = summing.loc[uid].to_numpy(dtype=bool)
        started = np.flatnonzero(present[:, cols].any(axis=1))
        first = int(started[0])
        parts.append(pd.DataFrame({S.UID: uid, S.DS: hours[first:], S.Y: filled[first:, cols].sum(axis=1)}))
    long = pd.concat(parts, ignore_index=True).sort_values([S.UID, S.DS], kind="stable").reset_index(drop=True)
    return Hierarchy(nodes=nodes, S=summing, tags=tags, long=long)


# --- reconciliation -----------------------------------------------------------------------------
def _reconciler(method: str, nonnegative: bool, ridge: float):
    from hierarchicalforecast.methods import BottomUp, MinTrace

    if method == "bottom_up":
        return BottomUp()
    kwargs = {"mint_shr_ridge": ridge} if method == "mint_shrink" else {}
    return MinTrace(method="wls_var" if method == "wls_var_total" else method, nonnegative=nonnegative, **kwargs)


def reconcile_means(summing: np.ndarray, y_hat: np.ndarray, method: str = "wls_var",
                    residuals: np.ndarray | None = None, *, nonnegative: bool = True,
                    mint_shr_ridge: float = 2e-8) -> np.ndarray:
    """Reconcile base point forecasts with hierarchicalforecast (MinTrace or BottomUp).

    Args:
        summing: summing matrix (n_series, n_bottom); the last ``n_bottom`` rows must be the identity
            (aggregates first, bottom series last, hierarchicalforecast's convention).
        y_hat: base forecasts (n_series, horizon), GPUs per hour.
        method: one of :data:`METHODS`.
        residuals: forecast errors (n_series, n_samples) for ``wls_var_total``/``wls_var``/``mint_shrink``;
            NaN = missing. ``wls_var_total`` scales the rows of the top nodes (summing-matrix rows of all ones)
            by :data:`PIN_FACTOR`.
        nonnegative: solve the hours whose reconciled bottom forecasts would be negative again as
            MinTrace's non-negative quadratic programme (only those hours, so the rest stay the closed
            form solution).
        mint_shr_ridge: ridge of the shrunk covariance.

    Returns:
        Reconciled forecasts (n_series, horizon): ``summing @ bottom``, so coherent by construction.

    Raises:
        ValueError: unknown method, or missing residuals for a method that needs them.
    """
    if method not in METHODS:
        raise ValueError(f"unknown reconciliation method '{method}' (choose from {', '.join(METHODS)})")
    summing = np.asarray(summing, dtype=float)
    y_hat = np.asarray(y_hat, dtype=float)
    insample = {}
    if method in RESIDUAL_METHODS:
        if residuals is None:
            raise ValueError(f"method '{method}' needs residuals")
        residuals = np.array(residuals, dtype=float)
        if method == "wls_var_total" and summing.shape[1] > 1:
            residuals[summing.all(axis=1)] *= PIN_FACTOR
        insample = {"y_insample": residuals, "y_hat_insample": np.zeros_like(residuals)}
    n_bottom = summing.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = _reconciler(method, False, mint_shr_ridge).fit_predict(S=summing, y_hat=y_hat, **insample)["mean"]
        negative = (out[-n_bottom:] < 0).any(axis=0)
        if nonnegative and negative.any() and method != "bottom_up":
            fixed = _reconciler(method, True, mint_shr_ridge).fit_predict(
                S=summing, y_hat=np.clip(y_hat[:, negative], 0.0, None), **insample)["mean"]
            out[:, negative] = fixed
    # Recompute aggregates from the bottom rows so totals equal sums exactly in float64.
    bottom = out[-n_bottom:]
    if nonnegative:
        bottom = np.clip(bottom, 0.0, None)
    return summing @ bottom


def aligned_errors(errors: pd.DataFrame, series: Sequence[str]) -> pd.DataFrame:
    """CV errors aligned across series: index ``series``, columns ``(from_end, step)``, NaN where missing.

    Windows are counted from the end of the history (every series ends at the same hour and shares the
    CV window length and step), so column ``(window from end, step)`` is the same forecast origin and
    lead time for every series.
    """
    columns = pd.MultiIndex.from_arrays([[], []], names=["from_end", "step"])
    if errors.empty:
        return pd.DataFrame(index=pd.Index(list(series), name=S.UID), columns=columns, dtype=float)
    e = errors[errors[S.UID].isin(series)]
    from_end = e.groupby(S.UID)["window"].transform("max") - e["window"]
    mat = pd.DataFrame({S.UID: e[S.UID].to_numpy(), "from_end": from_end.to_numpy(), "step": e["step"].to_numpy(),
                        "error": e["error"].to_numpy(dtype=float)})
    wide = mat.pivot_table(index=S.UID, columns=["from_end", "step"], values="error", aggfunc="first")
    return wide.reindex(list(series)).astype(float)


def residual_matrix(errors: pd.DataFrame, series: Sequence[str]) -> np.ndarray:
    """:func:`aligned_errors` as a (n_series, n_samples) array (MinTrace's in-sample residuals)."""
    return aligned_errors(errors, series).to_numpy(dtype=float)


def fill_young_variances(residuals: np.ndarray, series: Sequence[str], noise: pd.Series) -> tuple[np.ndarray, int]:
    """Give series with fewer than 2 CV errors (a series a few days old) a residual row for the diagonal methods.

    ``wls_var`` only uses each row's variance, so a young series' row is a series with errors rescaled to
    ``ratio * noise``: ``noise`` is its mean hour-to-hour change (:func:`forecasting.engine.noise_scale`, GPUs)
    and ``ratio`` the median over the other series of their CV error standard deviation over their noise
    scale. Without this, one young series sent the whole hierarchy to ``wls_struct``.

    Returns:
        The residual matrix (a copy when changed) and how many rows were filled (0 when none could be).
    """
    finite = np.isfinite(residuals)
    young = finite.sum(axis=1) < 2
    if not young.any() or young.all() or residuals.shape[1] < 2:
        return residuals, 0
    sd = np.array([np.nanstd(r) if ok else np.nan for r, ok in zip(residuals, ~young, strict=True)])
    scale = noise.reindex(list(series)).to_numpy(dtype=float)
    usable = ~young & np.isfinite(scale) & (scale > 0) & (sd > 0)
    complete = usable & finite.all(axis=1)
    if not complete.any():
        return residuals, 0
    ratio = float(np.median(sd[usable] / scale[usable]))
    ref = int(np.flatnonzero(complete)[0])
    floor = 1e-3 * float(np.median(scale[usable]))
    out = residuals.copy()
    for i in np.flatnonzero(young):
        target = ratio * max(scale[i] if np.isfinite(scale[i]) else 0.0, floor)
        out[i] = residuals[ref] * (target / sd[ref])
    return out, int(young.sum())


def _reconciled_errors(summing: np.ndarray, errors: pd.DataFrame, series: list[str], method: str,
                       residuals: np.ndarray | None, ridge: float) -> pd.DataFrame | None:
    """CV errors the reconciled forecasts would have made: ``S P e`` (reconciliation is linear and the
    actuals are coherent, so ``y - S P y_hat = S P (y - y_hat)``). Only CV samples every series has are
    used; None when fewer than :data:`MIN_CONFORMAL_ERRORS` remain."""
    wide = aligned_errors(errors, series)
    complete = wide.loc[:, wide.notna().all(axis=0)]
    if complete.shape[1] < MIN_CONFORMAL_ERRORS:
        return None
    rec = reconcile_means(summing, complete.to_numpy(dtype=float), method, residuals, nonnegative=False,
                          mint_shr_ridge=ridge)
    from_end = complete.columns.get_level_values("from_end").to_numpy()
    window = np.tile(from_end.max() - from_end, len(series))
    step = np.tile(complete.columns.get_level_values("step").to_numpy(), len(series))
    return pd.DataFrame({S.UID: np.repeat(series, complete.shape[1]), "window": window, "step": step,
                         "error": rec.ravel()})


def reconcile(hierarchy: Hierarchy, base: LongForecast, hconfig: HierarchyConfig | None = None) -> HierarchicalForecast:
    """Reconcile the base forecasts of a hierarchy's distinct series (see the module docstring).

    Args:
        hierarchy: from :func:`build_hierarchy`.
        base: :func:`forecasting.engine.forecast_long` of ``hierarchy.long``.
        hconfig: reconciliation settings.

    Returns:
        The :class:`HierarchicalForecast` of every node.
    """
    hconfig = hconfig or HierarchyConfig()
    notes: list[str] = list(base.notes)
    distinct = hierarchy.distinct
    n_bottom = hierarchy.S.shape[1]
    fc = base.forecast
    by_uid = {uid: g for uid, g in fc.groupby(S.UID, sort=False)}
    missing = [u for u in distinct if u not in by_uid]
    if missing:
        raise ValueError(f"base forecasts missing for {len(missing)} series, e.g. '{missing[0]}'")
    horizon = len(by_uid[distinct[0]])
    ds = by_uid[distinct[0]][S.DS].to_numpy()
    y_hat = np.vstack([by_uid[u][S.MEAN].to_numpy(dtype=float) for u in distinct])
    method = hconfig.method
    residuals = None
    # the noise scale serves both the young series' variances and the blended ranges: computed once
    noise = noise_scale(hierarchy.long) if method in DIAGONAL_METHODS or base.calibration == "blend" else None
    if method in RESIDUAL_METHODS:
        residuals = residual_matrix(base.errors, distinct)
        if method in DIAGONAL_METHODS:
            residuals, filled = fill_young_variances(residuals, distinct, noise)
            if filled:
                notes.append(f"{method}: {filled} series with fewer than 2 CV errors weighted by their noise scale "
                             "times the other series' typical error-to-noise ratio")
        enough = residuals.shape[1] >= 2 and (np.isfinite(residuals).sum(axis=1) >= 2).all()
        if not enough:
            notes.append(f"{method}: some series have fewer than 2 CV errors; reconciled with {FALLBACK_METHOD}")
            method, residuals = FALLBACK_METHOD, None
    summing = hierarchy.summing_matrix()
    try:
        y_tilde = reconcile_means(summing, y_hat, method, residuals, nonnegative=hconfig.nonnegative,
                                  mint_shr_ridge=hconfig.mint_shr_ridge)
    except Exception as exc:  # hierarchicalforecast raises bare Exception for ill-conditioned W
        if method == FALLBACK_METHOD:
            raise
        notes.append(f"{method} failed ({str(exc).splitlines()[0][:120]}); reconciled with {FALLBACK_METHOD}")
        method, residuals = FALLBACK_METHOD, None
        y_tilde = reconcile_means(summing, y_hat, method, nonnegative=hconfig.nonnegative)
    if not hconfig.nonnegative and (y_tilde[-n_bottom:] < -1e-9).any():
        notes.append("some reconciled means are negative (nonnegative=False)")

    q_cols = list(QUANTILES)
    rec = pd.DataFrame({"series": np.repeat(distinct, horizon), S.TIMESTAMP: np.tile(pd.to_datetime(ds), len(distinct)),
                        S.MEAN: y_tilde.ravel()})
    rec_errors = None
    if hconfig.quantiles == "conformal":
        rec_errors = _reconciled_errors(summing, base.errors, distinct, method, residuals, hconfig.mint_shr_ridge)
        if rec_errors is None:
            notes.append(f"fewer than {MIN_CONFORMAL_ERRORS} CV samples common to all series: ranges are the base "
                         "ranges shifted by the reconciliation")
    if rec_errors is not None:
        point = rec.rename(columns={"series": S.UID, S.TIMESTAMP: S.DS})
        blend = noise if base.calibration == "blend" else None
        growth = lead_growth(rec_errors, blend) if base.lead_growth else 0.0
        q = conformal_quantiles(point, rec_errors, blend, growth=growth)[q_cols].to_numpy(dtype=float)
    else:
        base_q = np.vstack([by_uid[u][q_cols].to_numpy(dtype=float) for u in distinct])
        q = np.sort(np.clip(base_q + (y_tilde - y_hat).reshape(-1, 1), 0.0, None), axis=1)
    rec[q_cols] = q
    rec[BASE_MEAN] = y_hat.ravel()
    rec[S.MODEL] = np.concatenate([by_uid[u][S.MODEL].to_numpy() for u in distinct])
    cols = [LEVEL, KEY, S.TEAM, S.GPU_TYPE, "series"]
    out = hierarchy.nodes[cols].merge(rec, on="series", how="left", sort=False).drop(columns="series")
    out[LEVEL] = pd.Categorical(out[LEVEL], categories=list(LEVELS), ordered=True)
    out = out.sort_values([LEVEL, KEY, S.TIMESTAMP], kind="stable").reset_index(drop=True)
    out[LEVEL] = out[LEVEL].astype(str)
    dup = int((hierarchy.nodes[S.UID] != hierarchy.nodes["series"]).sum())
    if dup:
        notes.append(f"{dup} nodes equal another node (same members) and share its forecast")
    if len(out) != len(hierarchy.nodes) * horizon:
        raise AssertionError("reconciled forecast has an unexpected number of rows")
    return HierarchicalForecast(forecast=out, S=hierarchy.S, tags=hierarchy.tags, hierarchy=hierarchy, base=base,
                                method=method, notes=tuple(notes))


def reconcile_usage(usage: pd.DataFrame, config: ForecastConfig | None = None,
                    hconfig: HierarchyConfig | None = None, *, progress: Progress | None = None,
                    ) -> HierarchicalForecast:
    """Forecast every node of the team x GPU-type hierarchy of a usage frame and reconcile them.

    Args:
        usage: canonical usage frame (see ``usage.schema.validate_usage``).
        config: forecast settings used for every node (the same as for team forecasts).
        hconfig: reconciliation settings.
        progress: optional callback receiving one line per step (passed to the engine).

    Returns:
        A :class:`HierarchicalForecast`; forecasts start at the hour after the data's last hour.
    """
    hierarchy = build_hierarchy(usage)
    base = forecast_long(hierarchy.long, config or ForecastConfig(), progress=progress)
    if progress is not None:
        progress(f"reconciling {len(hierarchy.nodes)} nodes ({(hconfig or HierarchyConfig()).method})")
    return reconcile(hierarchy, base, hconfig)


def add_adjustments(levels: pd.DataFrame, before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Carry adjustments made to the bottom forecasts (planned events) up to every node that contains them.

    An event adds or removes GPUs of one (team, GPU type) series; the same GPUs belong to its team, its GPU type
    and the total, so each node gets the sum of its members' changes, per hour and per column (mean and each
    quantile), and the levels stay coherent. Series an event creates (a new project) become new nodes with
    ``model`` ``event`` and ``base_mean`` 0. Quantiles are clipped at 0 and re-sorted.

    Args:
        levels: :attr:`HierarchicalForecast.forecast` (``level, key, team, gpu_type, timestamp, mean, p05..p95,
            base_mean, model``; GPUs per hour).
        before: the bottom forecast the events were applied to (``team, gpu_type, timestamp, mean, p..``).
        after: the same forecast with the events applied (``forecasting.events.apply_events``).

    Returns:
        The levels with the adjustments added, in the same column order, sorted by level, key and hour.
    """
    keys = [S.TEAM, S.GPU_TYPE, S.TIMESTAMP]
    cols = [c for c in (S.MEAN, *QUANTILES) if c in levels.columns]
    merged = after[keys + cols].merge(before[keys + cols], on=keys, how="outer", suffixes=("", "_before"))
    delta = pd.DataFrame({c: merged[c].fillna(0.0).to_numpy(float) - merged[f"{c}_before"].fillna(0.0).to_numpy(float)
                          for c in cols})
    # rows an event created keep every hour (zeros before it starts), so new nodes span the whole horizon
    changed = (np.abs(delta.to_numpy()) > 1e-12).any(axis=1) | merged[f"{S.MEAN}_before"].isna().to_numpy()
    if not changed.any():
        return levels
    delta = delta[changed].reset_index(drop=True)
    team = merged.loc[changed, S.TEAM].astype(str).to_numpy()
    gpu = merged.loc[changed, S.GPU_TYPE].astype(str).to_numpy()
    ts = merged.loc[changed, S.TIMESTAMP].to_numpy()
    n = len(delta)
    node = pd.DataFrame({
        LEVEL: np.repeat(list(LEVELS), n),
        KEY: np.concatenate([np.full(n, TOTAL, dtype=object), gpu, team,
                             S.series_id(pd.Series(team), pd.Series(gpu)).to_numpy()]),
        S.TEAM: np.concatenate([np.full(n, None), np.full(n, None), team, team]),
        S.GPU_TYPE: np.concatenate([np.full(n, None), gpu, np.full(n, None), gpu]),
        S.TIMESTAMP: np.tile(ts, len(LEVELS)),
        **{c: np.tile(delta[c].to_numpy(), len(LEVELS)) for c in cols}})
    by = [LEVEL, KEY, S.TIMESTAMP]
    change = node.groupby(by, sort=False, dropna=False).agg(
        {S.TEAM: "first", S.GPU_TYPE: "first", **{c: "sum" for c in cols}}).reset_index()
    out = levels.merge(change, on=by, how="outer", suffixes=("", "_delta"), indicator=True)
    new = (out["_merge"] == "right_only").to_numpy()
    for c in cols:
        out[c] = out[c].fillna(0.0) + out[f"{c}_delta"].fillna(0.0)
    for c in (S.TEAM, S.GPU_TYPE):
        out.loc[new, c] = out.loc[new, f"{c}_delta"]
    if BASE_MEAN in out.columns:
        out.loc[new, BASE_MEAN] = 0.0
    if S.MODEL in out.columns:
        out.loc[new, S.MODEL] = "event"
    q = [c for c in QUANTILES if c in cols]
    out[S.MEAN] = out[S.MEAN].clip(lower=0.0)
    out[q] = np.sort(np.clip(out[q].to_numpy(float), 0.0, None), axis=1)
    out[LEVEL] = pd.Categorical(out[LEVEL], categories=list(LEVELS), ordered=True)
    out = out.sort_values([LEVEL, KEY, S.TIMESTAMP], kind="stable").reset_index(drop=True)
    out[LEVEL] = out[LEVEL].astype(str)
    return out[list(levels.columns)]


def write_levels_csv(levels: pd.DataFrame, path) -> None:
    """Write reconciled forecasts of every level (:attr:`HierarchicalForecast.forecast`) atomically, timestamps as
    ISO 8601 UTC; one row per (level, key, hour), GPUs per hour."""
    from usage.io import write_csv_atomic

    out = levels.copy()
    out[S.TIMESTAMP] = S.format_timestamp(pd.to_datetime(out[S.TIMESTAMP]))
    write_csv_atomic(out, path)


# --- accuracy -----------------------------------------------------------------------------------
def hierarchy_holdout(usage: pd.DataFrame, holdout_hours: int = 168, config: ForecastConfig | None = None,
                      hconfig: HierarchyConfig | None = None, methods: Sequence[str] | None = None,
                      ) -> pd.DataFrame:
    """Fit on all but the last ``holdout_hours``, reconcile, and score every level on the held-out hours.

    The base forecasts are made once; every method in ``methods`` (default: ``hconfig.method``) reconciles
    the same base forecasts.

    Args:
        usage: canonical usage frame.
        holdout_hours: hours held back (the forecast horizon).
        config: forecast settings (``horizon_hours`` is set to ``holdout_hours``).
        hconfig: reconciliation settings (``method`` is replaced by each of ``methods``).
        methods: reconciliation methods to score.

    Returns:
        One row per (method, level), methods ``base`` (unreconciled) then each reconciliation:
        ``method, level, nodes, mae`` (mean over the level's nodes of their MAE, GPUs; a node equal to
        another one counts at each level it appears), ``mase`` (mean over nodes of MAE / in-sample 24-hour
        seasonal naive MAE of the node's training part), ``coverage_p10_p90`` (mean over nodes of the share
        of held-out hours inside the p10-p90 band; target 0.8), ``mae_vs_base``, ``mase_vs_base``
        (ratios to the base row of the same level; < 1 is better), ``seconds`` (reconciliation time; for
        ``base`` the forecasting time).
    """
    config = replace(config or ForecastConfig(), horizon_hours=holdout_hours)
    hconfig = hconfig or HierarchyConfig()
    methods = list(methods or [hconfig.method])
    cut = usage[S.TIMESTAMP].max() - pd.Timedelta(hours=holdout_hours - 1)
    train = usage[usage[S.TIMESTAMP] < cut]
    if train.empty:
        raise ValueError(f"no history before the {holdout_hours}-hour hold-out")
    hierarchy = build_hierarchy(train)
    full = build_hierarchy(usage)
    started = time.perf_counter()
    base = forecast_long(hierarchy.long, config)
    base_seconds = time.perf_counter() - started
    actual = full.long[full.long[S.DS] >= cut].rename(columns={S.DS: S.TIMESTAMP, S.Y: "actual"})
    scale = seasonal_scale(hierarchy.long, season=SEASON)
    nodes = hierarchy.nodes[[LEVEL, KEY, "series"]]

    def score(fc: pd.DataFrame, method: str, seconds: float) -> list[dict]:
        # fc: series, timestamp, mean, p10, p90 of every distinct series
        m = fc.merge(actual, left_on=["series", S.TIMESTAMP], right_on=[S.UID, S.TIMESTAMP], how="inner")
        m["abs"] = (m["actual"] - m[S.MEAN]).abs()
        m["inside"] = (m["actual"] >= m[S.P10] - 1e-9) & (m["actual"] <= m[S.P90] + 1e-9)
        per = m.groupby("series").agg(mae=("abs", "mean"), inside=("inside", "mean"))
        per["mase"] = per["mae"] / per.index.map(scale)
        per = nodes.merge(per, left_on="series", right_index=True, how="inner")
        rows = []
        for level in LEVELS:
            p = per[per[LEVEL] == level]
            rows.append({"method": method, LEVEL: level, "nodes": len(p), "mae": p["mae"].mean(),
                         "mase": p["mase"].mean(), "coverage_p10_p90": p["inside"].mean(), "seconds": seconds})
        return rows

    series_fc = [S.TIMESTAMP, S.MEAN, S.P10, S.P90]
    rows = score(base.forecast.rename(columns={S.UID: "series", S.DS: S.TIMESTAMP}), "base", base_seconds)
    for method in methods:
        started = time.perf_counter()
        rec = reconcile(hierarchy, base, replace(hconfig, method=method))
        seconds = time.perf_counter() - started
        fc = rec.forecast.merge(nodes, on=[LEVEL, KEY]).drop_duplicates(["series", S.TIMESTAMP])
        label = method if rec.method == method else f"{method}->{rec.method}"
        rows.extend(score(fc[["series", *series_fc]], label, seconds))
    out = pd.DataFrame(rows)
    ref = out[out["method"] == "base"].set_index(LEVEL)
    out["mae_vs_base"] = out["mae"] / out[LEVEL].map(ref["mae"]).to_numpy()
    out["mase_vs_base"] = out["mase"] / out[LEVEL].map(ref["mase"]).to_numpy()
    return out
