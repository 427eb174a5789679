"""Anomaly detection on the synthetic org with injected anomalies: recall, false alarms, against two baselines.

Each case takes the shipped synthetic org (``data_samples/synthetic_org.parquet``), a look-back window of 28 days
ending at ``as_of`` and a seed, and injects into the window (all sizes relative to the series' mean over the four
weeks before the window):

* two spikes: +100% for 3-6 hours;
* two slow drifts: a ramp from 0 to +40% over 5 days (120 hours), then held;
* one level shift: a step of +40%, held;
* one team up while another goes down by the same GPUs (+X on one team's series, -X on another's, X = 40% of the
  smaller mean; both held; the org total does not move). It counts as found only when both sides are.

Each anomaly goes to a different team, on one of its GPU types, starting on a random hour of days 2-20.

Recall: an injected anomaly is found when the detector reports its team (its GPU type or the team total) with
the right kind (spike, drift, level_shift; both sides of the opposite pair as level_shift), overlapping the
injected hours (+-24 h). The baselines do not tell kinds apart, so "team recall" (right team, any kind) is
reported for all three. False-alarm rate: the share of team x GPU series of the teams with no injection that
get at least one alarm in the window. Precision: of the series (team x GPU type, and team totals) with at least one
alarm, the share that carry an injection (its team, its GPU type or the team total) and an alarm overlapping its
hours (+-24 h, any kind); a series whose alarms are all on hours away from an injection counts against it.

Baselines on the same data: a rolling z-score (each hour against the mean and standard deviation of the 168
hours before it) and a rolling MAD score (median and 1.4826 x MAD of the 168 hours before), alarming when
``|score|`` reaches a threshold.

Thresholds are chosen on the TUNING set only, then reported on the separate sets below. The rule: among the
settings with at most 10% false alarms there, those within :data:`RECALL_TIE` injected anomalies of the highest
recall, and of those the one with the fewest false alarms (then the highest recall); when no setting of a method
gets there (the baselines: the untouched series of the synthetic org carry large changes of their own, see
docs/benchmarks.md), the setting with the largest recall minus false-alarm rate (Youden's J). Our detector is run
as designed and in two ablations (:data:`DESIGNS`), each tuned the same way. Sets:

* TUNING: windows ending 2025-03-01, 2025-05-01, 2025-07-01 with seeds 0-3;
* REPORTING: windows ending 2025-04-01, 2025-06-01, 2025-08-01, 2025-10-01, 2025-11-29 with seeds 100-103;
* FRESH: windows ending 2024-10-01, 2024-12-01, 2025-01-01, 2025-02-01, 2025-09-01 with seeds 200-203 (none of
  their days in a window above). Added on 2026-12-04, before the design it first reported was run on it: the
  REPORTING set's false alarms had been read (docs/benchmarks.md), so a design made after that reading is
  reported on both, and FRESH is the one no reading has touched.
* FRESH2: windows ending 2024-08-01, 2024-09-01, 2024-11-01, 2025-10-31 with seeds 300-303 (none of their days in
  a window above). Added on 2026-12-04 with the RECALL_TIE rule: until then the rule took the highest recall
  at <= 10% false alarms, and on REPORTING and FRESH the setting it took (hour score 6, one more anomaly found on
  tuning than 12, at 9.9% false alarms there against 8.3%) alarmed on 17.4% and 16.8% of the untouched series
  against 13.0% and 10.3% for 12. A rule changed after reading those two sets is reported on a set that neither
  this change nor any earlier one has seen.
* OTHER ORGS: the same generator (:func:`forecasting.samples.generate_synthetic_org`) with master seeds 2 and 3
  instead of the shipped one: the same teams, growth, seasonality and planned runs, with their own noise, experiment
  jobs, failures and bursts. Windows ending on the 15th of each month from 2024-09-15 to 2025-11-15 (15 per org),
  injection seeds 400-414 (org 2) and 500-514 (org 3). Added on 2026-12-04 (21:27 UTC) and run once, after the
  last decision about the detector: the shipped org had no room left for a set no reading had touched. (A third
  regenerated org, master seed 1, windows on the 1st of each month, served that session's design experiments; none
  was kept, and it is not reported here.)

Our detector also runs given what the synthetic organisation planned (``PLANNED``): its large jobs, its wind-down
and its launches as events (:func:`forecasting.samples.planned_events`), as a platform team would give them to
``gpuplan anomalies --events``; its setting is chosen on TUNING by the same rule. Added on 2026-12-05 after reading the
false alarms of TUNING and of a design org (master seed 1): many were the org's own planned runs, their ends, its
wind-down and its launches' ramps.

Besides recall and false alarms summed over a set, the tables count the cases that meet the Done-when bar on their
own: at least 5 of the 6 found with the right team and kind, and alarms on at most 1 in 10 of their untouched series.

``--by-size`` runs only :func:`by_size`: the shipped detector on a regenerated org no other set uses (master seed
:data:`BY_SIZE_ORG`), with the injected changes at +40% (the benchmark's :data:`SIZE`), +80% and +120%.

``--kinds`` runs only :func:`kinds`: on OTHER ORGS, the shipped detector's finds of each injected drift, level shift
and pair side (team, and team + kind) beside what the change's own data says of its kind (:func:`kind_evidence`: a
least-squares classifier told where the change is).

Run: ``python benchmarks/anomaly_detection.py`` (about 12 minutes on one core: the grid on TUNING, then each set);
``python benchmarks/anomaly_detection.py --by-size`` (about 2 minutes); ``--kinds`` (about 1 minute).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from forecasting.samples import generate_synthetic_org, planned_events  # noqa: E402
from operate.anomalies import (  # noqa: E402
    ALL_GPUS,
    DRIFT_MIN_HOURS,
    RAMPS,
    AnomalyConfig,
    find,
    fit_window,
    ramp_shapes,
)
from usage import schema as S  # noqa: E402

DATA = ROOT / "data_samples" / "synthetic_org.parquet"
LOOKBACK_DAYS = 28
TUNING = tuple((pd.Timestamp(d), s) for d in ("2025-03-01", "2025-05-01", "2025-07-01") for s in range(4))
REPORTING = tuple((pd.Timestamp(d), s) for d in ("2025-04-01", "2025-06-01", "2025-08-01", "2025-10-01",
                                                   "2025-11-29") for s in range(100, 104))
FRESH = tuple((pd.Timestamp(d), s) for d in ("2024-10-01", "2024-12-01", "2025-01-01", "2025-02-01", "2025-09-01")
              for s in range(200, 204))
FRESH2 = tuple((pd.Timestamp(d), s) for d in ("2024-08-01", "2024-09-01", "2024-11-01", "2025-10-31")
               for s in range(300, 304))
OTHER_WINDOWS = pd.date_range("2024-09-01", "2025-11-01", freq="MS") + pd.Timedelta(days=14)   # the 15ths
OTHER_ORGS = tuple((org, tuple((d, base + i) for i, d in enumerate(OTHER_WINDOWS))) for org, base in ((2, 400),
                                                                                                       (3, 500)))
"""(master seed of a regenerated synthetic org, its cases): the OTHER ORGS set of the module docstring."""
MAX_FALSE_ALARM = 0.10
BAR_FOUND = 5
"""Injected anomalies of a case's six that the Done-when bar asks to find (with the right team and kind)."""
RECALL_TIE = 2
"""Injected anomalies of recall within which settings count as equal on the tuning set (72 injections: a
difference of one or two is within its resolution), so the fewest false alarms decides."""
SETTINGS = tuple((z, k, h) for z in (6.0, 8.0, 10.0, 12.0) for k, h in ((0.5, 10.0), (1.0, 5.0), (1.0, 10.0),
                                                                        (1.5, 5.0), (1.5, 10.0), (1.5, 15.0)))
"""Our detector's (hour score, CUSUM slack, CUSUM level) settings tried on the tuning set."""
PLANNED = "ours, with the org's plan as events"
DESIGNS = {"forecast ranges (ours)": {},
           PLANNED: {},
           "ours without the return rule": {"return_share": None},
           "ours without the held-change test": {"held_t": None},
           "ours without it, level shifts need not last": {"held_t": None, "end_share": None}}
"""Our kept design, the same given what the organisation planned, and three ablations (AnomalyConfig overrides).
The module constants they switch off (RETURN_SHARE, HELD_T and the HELD_* rules, END_SHARE, and the rules of
operate/anomalies.py) were chosen on the tuning set (RETURN_SHARE on it and a design org); docs/benchmarks.md lists
the tuning numbers of every change tried.

:data:`PLANNED` runs the detector with ``events``: the synthetic organisation's large planned jobs, its wind-down and
its launches (:func:`forecasting.samples.planned_events`), as a platform team running ``gpuplan anomalies --events``
would give them. The injected anomalies are not in it (nobody planned them). Every other design runs without events,
as the Done-when's test does."""
PLAN = planned_events()
SIZE = 0.4
"""The injected drifts', level shift's and pair's change as a share of the series' mean (the issue gives no size;
chosen when the benchmark was written)."""
BY_SIZE_ORG = 4
BY_SIZE_CASES = tuple((d, 600 + i) for i, d in enumerate(pd.date_range("2024-09-01", "2025-11-01", freq="MS")))
BY_SIZE = (0.4, 0.8, 1.2)
"""``--by-size``: the shipped detector (its defaults, nothing chosen on these) on the generator's org for master seed
:data:`BY_SIZE_ORG` (used by no other set), one case per window and injection seed of :data:`BY_SIZE_CASES`, with
the same six anomalies at each size of :data:`BY_SIZE`: how recall depends on how large the injected changes are."""
BASELINE_THRESHOLDS = (3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0)
BASELINE_HOURS = 168
KINDS_ONSET_HOURS = 72
"""``--kinds``: the onsets tried for the other kind's fit, +- this many hours around the true onset."""
KINDS_SPAN_HOURS = (48, 168)
"""``--kinds``: the hours fitted, from this many before the true onset to this many after it (the window's end at
most)."""
KIND_STEPS = tuple(h for h in RAMPS if h < DRIFT_MIN_HOURS)
KIND_RAMPS = tuple(h for h in RAMPS if h >= DRIFT_MIN_HOURS)
"""``--kinds``: the detector's candidate shapes (:data:`operate.anomalies.RAMPS`, ramp hours; 1 is a step), split
as it splits them (:data:`operate.anomalies.DRIFT_MIN_HOURS`): shorter ones are level shifts, the rest drifts."""
SLACK = pd.Timedelta(hours=24)


@dataclass(frozen=True)
class Injection:
    """One injected change: which series, which kind expected, when (``[start, end)``), and its name."""

    name: str
    team: str
    gpu_type: str
    kind: str
    start: pd.Timestamp
    end: pd.Timestamp


def load(org_seed: int | None = None) -> pd.DataFrame:
    """The shipped synthetic org, or (``org_seed``) the generator's org for that master seed."""
    if org_seed is not None:
        return S.validate_usage(generate_synthetic_org(seed=org_seed), f"synthetic org seed {org_seed}")[0]
    return S.validate_usage(pd.read_parquet(DATA), str(DATA))[0]


def inject(usage: pd.DataFrame, as_of: pd.Timestamp, seed: int, lookback_days: int = LOOKBACK_DAYS,
           size: float = SIZE) -> tuple[pd.DataFrame, tuple[Injection, ...]]:
    """The usage with the six Done-when anomalies added inside the window of ``lookback_days`` before ``as_of``
    (module docstring; spikes, the level shift and the pair start on days 2 to ``lookback_days - 8``, drifts on days
    2 to ``lookback_days - 12``, so that a 28-day window gives days 2-20 and 2-16). ``size``: the drifts' and the
    level shift's change, and the pair's, as a share of the (smaller) series' mean (:data:`SIZE`; the spikes are
    always +100%). A series taken below 0 GPUs is cut at 0."""
    rng = np.random.default_rng(seed)
    start = as_of - pd.Timedelta(days=lookback_days)
    before = usage[(usage[S.TIMESTAMP] >= start - pd.Timedelta(days=28)) & (usage[S.TIMESTAMP] < start)]
    level = before.groupby([S.TEAM, S.GPU_TYPE])[S.GPUS].mean()
    level = level[level >= 2.0]   # series with some usage to change
    teams = sorted(set(level.index.get_level_values(0)))
    chosen = list(rng.choice(teams, size=7, replace=False))
    out = usage.copy()
    ts = out[S.TIMESTAMP]
    injections: list[Injection] = []

    def series_of(team: str) -> tuple[str, float]:
        opts = level.loc[team]
        gpu = str(rng.choice(sorted(opts.index)))
        return gpu, float(opts[gpu])

    def when() -> pd.Timestamp:
        return start + pd.Timedelta(days=int(rng.integers(2, lookback_days - 7)), hours=int(rng.integers(0, 24)))

    def add(team: str, gpu: str, delta: np.ndarray | float, mask: pd.Series) -> None:
        rows = mask & (out[S.TEAM] == team) & (out[S.GPU_TYPE] == gpu)
        vals = out.loc[rows, S.GPUS].to_numpy() + (delta[rows.to_numpy()[mask.to_numpy()]]
                                                    if isinstance(delta, np.ndarray) else delta)
        out.loc[rows, S.GPUS] = np.maximum(vals, 0.0)

    for i in range(2):   # spikes
        team = chosen[i]
        gpu, m = series_of(team)
        t0 = when()
        t1 = t0 + pd.Timedelta(hours=int(rng.integers(3, 7)))
        add(team, gpu, m, (ts >= t0) & (ts < t1))
        injections.append(Injection(f"spike{i + 1}", team, gpu, "spike", t0, t1))
    for i in range(2):   # slow drifts over 5 days, then held
        team = chosen[2 + i]
        gpu, m = series_of(team)
        t0 = start + pd.Timedelta(days=int(rng.integers(2, lookback_days - 11)), hours=int(rng.integers(0, 24)))
        mask = (ts >= t0) & (ts < as_of)
        hours = ((ts[mask] - t0) / pd.Timedelta(hours=1)).to_numpy()
        add(team, gpu, size * m * np.minimum(hours / 120.0, 1.0), mask)
        injections.append(Injection(f"drift{i + 1}", team, gpu, "drift", t0, t0 + pd.Timedelta(hours=120)))
    team = chosen[4]
    gpu, m = series_of(team)
    t0 = when()
    add(team, gpu, size * m, (ts >= t0) & (ts < as_of))
    injections.append(Injection("level_shift", team, gpu, "level_shift", t0, as_of))
    (up, down) = chosen[5], chosen[6]
    gpu_up, m_up = series_of(up)
    gpu_down, m_down = series_of(down)
    x = size * min(m_up, m_down)
    t0 = when()
    add(up, gpu_up, x, (ts >= t0) & (ts < as_of))
    add(down, gpu_down, -x, (ts >= t0) & (ts < as_of))
    injections.append(Injection("opposite_up", up, gpu_up, "level_shift", t0, as_of))
    injections.append(Injection("opposite_down", down, gpu_down, "level_shift", t0, as_of))
    return out, tuple(injections)


def untouched_series(usage: pd.DataFrame, injections: tuple[Injection, ...]) -> list[tuple[str, str]]:
    hit = {i.team for i in injections}
    pairs = usage[[S.TEAM, S.GPU_TYPE]].drop_duplicates()
    return [(t, g) for t, g in pairs.itertuples(index=False) if t not in hit]


def matched(rows: pd.DataFrame, inj: Injection, *, kind: bool) -> bool:
    """Whether an alarm table (``team, gpu_type, kind, start, end``) has the injection."""
    r = rows[(rows["team"] == inj.team) & rows["gpu_type"].isin([inj.gpu_type, ALL_GPUS])]
    if kind:
        r = r[r["kind"] == inj.kind]
    return bool(((r["start"] < inj.end + SLACK) & (r["end"] > inj.start - SLACK)).any())


def score_case(rows: pd.DataFrame, injections: tuple[Injection, ...], untouched: list[tuple[str, str]],
               *, kinds: bool) -> dict[str, float]:
    """Found / false-alarm counts of one case."""
    by = {i.name: i for i in injections}
    names = ("spike1", "spike2", "drift1", "drift2", "level_shift")
    strict = {n: matched(rows, by[n], kind=True) for n in names} if kinds else {}
    team = {n: matched(rows, by[n], kind=False) for n in names}
    if kinds:
        strict["opposite"] = matched(rows, by["opposite_up"], kind=True) and matched(rows, by["opposite_down"],
                                                                                      kind=True)
    team["opposite"] = matched(rows, by["opposite_up"], kind=False) and matched(rows, by["opposite_down"],
                                                                                 kind=False)
    flagged = set(zip(rows["team"], rows["gpu_type"], strict=True))
    false = sum((t, g) in flagged for t, g in untouched)
    true_series = 0
    for (t, g), part in rows.groupby(["team", "gpu_type"]):
        true_series += any(i.team == t and g in (i.gpu_type, ALL_GPUS)
                           and bool(((part["start"] < i.end + SLACK) & (part["end"] > i.start - SLACK)).any())
                           for i in injections)
    out = {"team_found": sum(team.values()), "false": false, "untouched": len(untouched),
           "alarmed": len(flagged), "true_alarmed": true_series}
    if kinds:
        out["found"] = sum(strict.values())
        out["at_bar"] = int(out["found"] >= BAR_FOUND and false <= MAX_FALSE_ALARM * len(untouched))
        for n, v in strict.items():
            out[f"found_{n}"] = int(v)
    return out


def baseline_rows(usage: pd.DataFrame, as_of: pd.Timestamp, threshold: float, robust: bool,
                  cache: dict, lookback_days: int = LOOKBACK_DAYS) -> pd.DataFrame:
    """Alarm rows (one per alarming hour run) of the rolling z-score or MAD baseline."""
    key = (id(usage), as_of, robust)
    if key not in cache:
        start = as_of - pd.Timedelta(days=lookback_days)
        part = usage[(usage[S.TIMESTAMP] >= start - pd.Timedelta(hours=BASELINE_HOURS))
                     & (usage[S.TIMESTAMP] < as_of)]
        wide = part.pivot_table(index=S.TIMESTAMP, columns=[S.TEAM, S.GPU_TYPE], values=S.GPUS, aggfunc="sum")
        wide = wide.fillna(0.0)
        prev = wide.shift(1).rolling(BASELINE_HOURS, min_periods=BASELINE_HOURS)
        if robust:
            center = prev.median()
            spread = 1.4826 * (wide.shift(1) - center).abs().rolling(BASELINE_HOURS, min_periods=1).median()
        else:
            center, spread = prev.mean(), prev.std()
        score = ((wide - center) / spread.where(spread > 1e-9, 1e-9)).abs()
        cache[key] = score[score.index >= start]
    score = cache[key]
    alarms = score >= threshold
    rows = []
    for col in alarms.columns:
        hits = alarms.index[alarms[col].to_numpy()]
        for t in hits:
            rows.append((col[0], col[1], t))
    if not rows:
        return pd.DataFrame(columns=["team", "gpu_type", "kind", "start", "end"])
    frame = pd.DataFrame(rows, columns=["team", "gpu_type", "start"])
    return frame.assign(kind="any", end=frame["start"] + pd.Timedelta(hours=1))


def run_set(cases, usage: pd.DataFrame, settings, thresholds) -> dict[tuple[str, float], dict[str, float]]:
    """Summed counts per (method, threshold) over the cases."""
    totals: dict[tuple[str, float], dict[str, float]] = {}
    for as_of, seed in cases:
        injected, injections = inject(usage, as_of, seed)
        untouched = untouched_series(usage, injections)
        window = fit_window(injected, as_of, AnomalyConfig(lookback_days=LOOKBACK_DAYS))   # rolling refits see it
        planned = fit_window(injected, as_of, AnomalyConfig(lookback_days=LOOKBACK_DAYS), events=PLAN)
        actual = window.observe(injected)
        results = []
        for design, overrides in DESIGNS.items():
            for z, k, h in settings.get(design, ()) if isinstance(settings, dict) else settings:
                rep = find(planned if design == PLANNED else window, actual, lambda _g: 1.0,
                           AnomalyConfig(lookback_days=LOOKBACK_DAYS, hour_z=z, cusum_k=k, cusum_h=h, **overrides))
                results.append(((design, (z, k, h)), score_case(rep.table, injections, untouched, kinds=True)))
        cache: dict = {}
        for robust, name in ((False, "rolling z-score"), (True, "rolling MAD")):
            for thr in thresholds:
                rows = baseline_rows(injected, as_of, thr, robust, cache)
                results.append(((name, thr), score_case(rows, injections, untouched, kinds=False)))
        for key, res in results:
            acc = totals.setdefault(key, {"cases": 0})
            acc["cases"] += 1
            for k, v in res.items():
                acc[k] = acc.get(k, 0) + v
    return totals


def add_totals(into: dict, more: dict) -> dict:
    """``into`` with the counts of ``more`` (two :func:`run_set` results) added."""
    for key, acc in more.items():
        mine = into.setdefault(key, {})
        for k, v in acc.items():
            mine[k] = mine.get(k, 0) + v
    return into


def choose(totals) -> dict:
    """Per method, among the settings with a false-alarm rate of at most MAX_FALSE_ALARM on these cases, those
    within RECALL_TIE found anomalies (team + kind for ours, team for the baselines) of the best, and of those the
    one with the fewest false alarms, then the most found; when no setting reaches the bound, the one with the
    largest recall minus false-alarm rate (Youden's J)."""
    best: dict = {}
    for method in dict.fromkeys(m for m, _ in totals):
        options = {thr: acc for (m, thr), acc in totals.items() if m == method}

        def recall(a: dict) -> float:
            return a.get("found", a["team_found"]) / (6 * a["cases"])

        ok = {t: a for t, a in options.items() if a["false"] / a["untouched"] <= MAX_FALSE_ALARM}
        if ok:
            top = max(a.get("found", a["team_found"]) for a in ok.values())
            near = {t: a for t, a in ok.items() if a.get("found", a["team_found"]) >= top - RECALL_TIE}
            best[method] = max(near, key=lambda t: (-near[t]["false"], recall(near[t])))
        else:
            best[method] = max(options, key=lambda t: recall(options[t]) - options[t]["false"]
                               / options[t]["untouched"])
    return best


def table(totals, chosen: dict[str, float]) -> str:
    lines = ["| method | setting | recall (team + kind) | recall (team) | false-alarm rate | precision | cases | "
             "cases at the bar |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for method, thr in chosen.items():
        acc = totals[(method, thr)]
        n = 6 * acc["cases"]
        kind = f"{acc['found'] / n:.0%} ({acc['found']:.0f}/{n})" if "found" in acc else "n/a (no kinds)"
        setting = f"z={thr[0]:g}, k={thr[1]:g}, h={thr[2]:g}" if isinstance(thr, tuple) else f"|z| >= {thr:g}"
        lines.append(f"| {method} | {setting} | {kind} | {acc['team_found'] / n:.0%} ({acc['team_found']:.0f}/{n}) | "
                     f"{acc['false'] / acc['untouched']:.1%} ({acc['false']:.0f}/{acc['untouched']:.0f}) | "
                     f"{acc['true_alarmed'] / max(acc['alarmed'], 1):.0%} ({acc['true_alarmed']:.0f}/"
                     f"{acc['alarmed']:.0f}) | {acc['cases']:.0f} | "
                     + (f"{acc['at_bar']:.0f} ({acc['at_bar'] / acc['cases']:.0%}) |" if "at_bar" in acc else "n/a |"))
    return "\n".join(lines)


def per_kind(acc: dict[str, float]) -> str:
    names = ("spike1", "spike2", "drift1", "drift2", "level_shift", "opposite")
    return ", ".join(f"{n} {acc[f'found_{n}']:.0f}/{acc['cases']:.0f}" for n in names)


def _added_gpu_hours(usage: pd.DataFrame, injected: pd.DataFrame, inj: Injection, as_of: pd.Timestamp) -> float:
    """GPU-hours the injection added to its series from its start to ``as_of`` (negative when it took them away)."""
    rows = ((usage[S.TEAM] == inj.team) & (usage[S.GPU_TYPE] == inj.gpu_type) & (usage[S.TIMESTAMP] >= inj.start)
            & (usage[S.TIMESTAMP] < as_of))
    return float((injected.loc[rows, S.GPUS] - usage.loc[rows, S.GPUS]).sum())


def by_size() -> None:
    """Recall by the injected changes' size (:data:`BY_SIZE`), the shipped detector's defaults, on a fresh org."""
    usage = load(BY_SIZE_ORG)
    config = AnomalyConfig(lookback_days=LOOKBACK_DAYS)
    totals: dict[float, dict[str, float]] = {}
    for as_of, seed in BY_SIZE_CASES:
        for size in BY_SIZE:
            injected, injections = inject(usage, as_of, seed, size=size)
            untouched = untouched_series(usage, injections)
            window = fit_window(injected, as_of, config)
            found = score_case(find(window, window.observe(injected), lambda _g: 1.0, config).table, injections,
                               untouched, kinds=True)
            by = {i.name: i for i in injections}
            moved = -_added_gpu_hours(usage, injected, by["opposite_down"], as_of)   # the up side was not cut
            meant = _added_gpu_hours(usage, injected, by["opposite_up"], as_of)
            acc = totals.setdefault(size, {"cases": 0, "clipped": 0.0})
            acc["cases"] += 1
            acc["clipped"] += 1.0 - moved / meant if meant > 0 else 0.0
            for k, v in found.items():
                acc[k] = acc.get(k, 0) + v
    print(f"BY SIZE: org master seed {BY_SIZE_ORG}, {len(BY_SIZE_CASES)} cases per size, shipped defaults")
    print("| size | recall (team + kind) | recall (team) | false-alarm rate | cases at the bar | per anomaly | "
          "pair's down side cut at 0 GPUs |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for size, acc in totals.items():
        n = 6 * acc["cases"]
        print(f"| +{size:.0%} | {acc['found'] / n:.0%} ({acc['found']:.0f}/{n}) | {acc['team_found'] / n:.0%} | "
              f"{acc['false'] / acc['untouched']:.1%} ({acc['false']:.0f}/{acc['untouched']:.0f}) | "
              f"{acc['at_bar']:.0f}/{acc['cases']:.0f} | {per_kind(acc)} | {acc['clipped'] / acc['cases']:.0%} |")


def _sse(r: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    """Least-squares residual sum of ``r`` on each row of ``shapes`` (with an intercept and a fitted size)."""
    rc = r - r.mean()
    g = shapes - shapes.mean(axis=1, keepdims=True)
    gg = (g * g).sum(axis=1)
    gr = g @ rc
    return float(rc @ rc) - np.where(gg > 0, gr * gr / np.maximum(gg, 1e-12), 0.0)


def _shapes(n: int, onsets: np.ndarray, ramps: tuple[int, ...]) -> np.ndarray:
    """The detector's shapes (:func:`operate.anomalies.ramp_shapes`) over ``n`` hours, for every onset and ramp."""
    return np.vstack([ramp_shapes(n, onsets, ramp) for ramp in ramps])


def kind_evidence(r: np.ndarray, t0: int, drift: bool) -> tuple[bool, bool]:
    """What a held change's own data says of its kind, told where it is.

    ``r``: hourly residuals of the series against the forecast made before the window; ``t0``: the change's true
    onset (hour index); ``drift``: whether it is a 120-hour ramp (else a step). On ``r`` from
    :data:`KINDS_SPAN_HOURS` before ``t0`` to after it: ``(a, b)`` with ``a`` whether the best fit of the other kind
    (onset free within :data:`KINDS_ONSET_HOURS` of ``t0``) leaves less residual than the true shape at ``t0``, and
    ``b`` whether it leaves less than the best fit of the true kind with the same freedom (a least-squares
    classifier told where the change is would get it wrong)."""
    a = max(t0 - KINDS_SPAN_HOURS[0], 0)
    r = r[a:min(t0 + KINDS_SPAN_HOURS[1], len(r))]
    k = t0 - a
    onsets = np.arange(max(k - KINDS_ONSET_HOURS, 0), min(k + KINDS_ONSET_HOURS, len(r) - 1) + 1, dtype=float)
    truth = float(_sse(r, _shapes(len(r), np.array([float(k)]), (120,) if drift else (1,)))[0])
    other = float(_sse(r, _shapes(len(r), onsets, KIND_STEPS if drift else KIND_RAMPS)).min())
    same = float(_sse(r, _shapes(len(r), onsets, KIND_RAMPS if drift else KIND_STEPS)).min())
    return other < truth, other < same


def kinds() -> None:
    """Can a held change's kind be told from its own data? The shipped detector's finds on OTHER ORGS (team, and
    team + kind) beside :func:`kind_evidence` of each injected drift, level shift and pair side."""
    config = AnomalyConfig(lookback_days=LOOKBACK_DAYS)
    rows = []
    for org, cases in OTHER_ORGS:
        usage = load(org)
        for as_of, seed in cases:
            injected, injections = inject(usage, as_of, seed)
            window = fit_window(injected, as_of, config)
            actual = window.observe(injected)
            table = find(window, actual, lambda _g: 1.0, config).table
            for inj in injections:
                if inj.kind != "spike":
                    uid = f"{S.escape_key(inj.team)}{S.UID_SEP}{S.escape_key(inj.gpu_type)}"
                    resid = actual[uid].to_numpy(float) - window.shape_base[uid].to_numpy(float)
                    rows.append((org, as_of, inj.name.rstrip("12"), matched(table, inj, kind=False),
                                 matched(table, inj, kind=True),
                                 *kind_evidence(resid, window.grid.get_loc(inj.start), inj.kind == "drift")))
    d = pd.DataFrame(rows, columns=["org", "as_of", "anomaly", "team", "kind", "other_beats_truth",
                                    "other_beats_best"])
    print(f"KINDS: OTHER ORGS ({len(d) // 5} cases), shipped defaults")
    print("| anomaly | n | found (team) | found (team + kind) | wrong kind, of those found | other kind fits better "
          "than the truth | least squares told where: wrong kind |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, part in d.groupby("anomaly", sort=False):
        wrong = 1.0 - part["kind"].sum() / max(part["team"].sum(), 1)
        print(f"| {name} | {len(part)} | {part['team'].mean():.0%} | {part['kind'].mean():.0%} | {wrong:.0%} | "
              f"{part['other_beats_truth'].mean():.0%} | {part['other_beats_best'].mean():.0%} |")
    # held changes found with the right kind (a pair counts when both its sides do): as shipped, with the
    # detector's detections and the told classifier's kinds, and with its detections and every kind right
    d["told"] = d["team"] & ~d["other_beats_best"]
    shipped, told, every = (_held_found(d, column) for column in ("kind", "told", "team"))
    print(f"held changes found with the right kind, of 4 per case: as shipped {shipped}, with the detector's "
          f"detections and the told classifier's kinds {told}, with its detections and every kind right {every}, "
          f"of {4 * (len(d) // 5)}")


def _held_found(d: pd.DataFrame, column: str) -> int:
    """Drifts and level shifts with ``column`` true, plus the pairs with it true on both sides (rows of
    :func:`kinds`, one up and one down side per case, in the same order)."""
    up = d.loc[d["anomaly"] == "opposite_up", column].to_numpy()
    down = d.loc[d["anomaly"] == "opposite_down", column].to_numpy()
    return int(d.loc[d["anomaly"].isin(["drift", "level_shift"]), column].sum()) + int((up & down).sum())


def main() -> None:
    if "--by-size" in sys.argv[1:]:
        by_size()
        return
    if "--kinds" in sys.argv[1:]:
        kinds()
        return
    usage = load()
    tuning = run_set(TUNING, usage, SETTINGS, BASELINE_THRESHOLDS)
    chosen = choose(tuning)
    print("TUNING set (thresholds chosen here):")
    print(table(tuning, chosen))
    print("\nall settings of ours on the tuning set (hour z, CUSUM k, h: recall team+kind, false-alarm rate):")
    for (m, thr), acc in tuning.items():
        if isinstance(thr, tuple):
            print(f"  {m} {thr}: {acc['found'] / (6 * acc['cases']):.0%}, {acc['false'] / acc['untouched']:.1%}")
    for design in DESIGNS:
        print(f"  {design}, per anomaly: " + per_kind(tuning[(design, chosen[design])]))
    for name, cases in (("REPORTING", REPORTING), ("FRESH", FRESH), ("FRESH2", FRESH2)):
        totals = run_set(cases, usage, {d: [chosen[d]] for d in DESIGNS}, BASELINE_THRESHOLDS)
        print(f"\n{name} set (thresholds fixed from tuning):")
        print(table(totals, chosen))
        for design in DESIGNS:
            print(f"{design} per anomaly, {name.lower()} set: " + per_kind(totals[(design, chosen[design])]))
    others: dict = {}
    for org, cases in OTHER_ORGS:
        part = run_set(cases, load(org), {d: [chosen[d]] for d in DESIGNS}, BASELINE_THRESHOLDS)
        ours = part[(next(iter(DESIGNS)), chosen[next(iter(DESIGNS))])]
        print(f"\nOTHER ORGS, master seed {org}: ours {ours['found'] / (6 * ours['cases']):.0%} found, "
              f"{ours['false'] / ours['untouched']:.1%} false alarms, "
              f"{ours['at_bar']:.0f}/{ours['cases']:.0f} cases at the bar")
        add_totals(others, part)
    print("\nOTHER ORGS set (regenerated orgs, thresholds fixed from tuning):")
    print(table(others, chosen))
    for design in DESIGNS:
        print(f"{design} per anomaly, other orgs: " + per_kind(others[(design, chosen[design])]))


if __name__ == "__main__":
    main()
