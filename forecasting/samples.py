"""Shipped sample organisations: a real month of Helios GPU demand and a SYNTHETIC 18-month organisation.

Two samples ship in ``data_samples/`` (see ``data_samples/README.md`` for sources and licenses):

* ``helios`` -- ``helios_earth_may2020.csv``: real per-team GPU demand of SenseTime's Helios cluster
  "Earth", May 2020 (16 virtual clusters x 744 hours), built by :func:`build_helios_sample` from the
  per-VC hourly trace. Timestamps are converted from the trace's UTC+8 wall clock to UTC; ``gpus`` is
  ``gpus_demand`` (GPUs held by running jobs + GPUs requested by queued jobs), because usage is capped by
  each VC's quota and the pending part is demand the cluster did not serve; ``gpu_type`` is
  ``NVIDIA Tesla V100`` (Earth is a Volta cluster per the SC'21 paper; the trace itself names no model).
* ``synthetic`` -- ``synthetic_org.parquet``: a SYNTHETIC organisation made up by
  :func:`generate_synthetic_org`; no real company's data is in it.

Synthetic organisation: assumptions
-----------------------------------
Everything is generated with numpy from one seed (default 20251130); each series draws from its own
generator seeded with ``(seed, crc32("team|gpu_type"))``, so adding or removing a series leaves the
others unchanged. The output equals the shipped parquet exactly (a test checks it).

* Calendar: hourly rows from ``start`` (default 2024-06-01T00:00Z) for ``months`` calendar months
  (default 18, so the last hour is 2025-11-30T23:00Z). Timestamps are naive UTC hour starts.
* Organisation: 22 teams, 30 (team, gpu_type) series on four GPU models. Training teams use
  ``NVIDIA H100`` / ``NVIDIA A100``; serving (inference) and dev teams use ``NVIDIA L4`` /
  ``NVIDIA A10G``. Most teams use one GPU model; 8 use two (e.g. a serving team migrating A10G -> L4, a
  training team moving A100 -> H100). Every event time below is given in days after ``start``.
* Magnitudes: about 490 GPUs in use in the first month, about 720 in the last (peak about 1,035 during
  a large training run); H100 carries the largest spend (an H100 costs ~2.5x an A100 and ~7x an L4 per
  hour) although A100 has the most GPU-hours.
* Trend: each series' base level grows geometrically at its own yearly rate (``growth``): most grow
  5-120%/year, a few are flat (0%), ``llm-pretrain``'s A100 fleet declines (-40%/year, work moving to
  H100), as do ``llm-inference``'s A10G fleet (-40%/year, moving to L4) and ``speech`` A100 (-10%/year).
* Daily seasonality: ``1 + daily_amp * cos(2*pi*(hour - peak_hour) / 24)``; peak at 18:00 UTC
  (US afternoon). Serving teams are strongly diurnal (amplitude 0.3-0.5), training teams only slightly
  (0.05, experiments are launched in working hours; 0.15 for ``fraud-ml``'s daytime scoring), dev teams
  follow a business-hours profile (floor of 25% overnight, full load about 15:00-21:00 UTC).
* Weekly seasonality: Saturday and Sunday (UTC) multiply the base load by ``weekend_factor``: serving
  0.55-0.85, training 0.9, dev 0.35. Jobs and bursts are not scaled.
* Noise: the level is multiplied by ``exp(x)`` where ``x`` is an AR(1) process (hourly phi 0.97) with
  stationary standard deviation ``noise`` (serving 0.04, training 0.05-0.1, dev 0.1), plus 2% white
  noise.
* Steps (training teams): explicit large jobs (e.g. ``llm-pretrain`` runs 64-128 H100 for 3-4 weeks
  five times) and random experiment jobs (Poisson arrivals, ``churn_per_week``, 4-16 GPUs for an
  exponential 1-4 days). Large jobs fail on ~15% of days and sit at 0 GPUs for 2-8 hours before the
  restart. ``recsys-train`` adds a nightly retrain (+16 GPUs 02:00-08:00 UTC, growing with the team).
* Late starts: ``vision-research`` H100 (day 219), ``multimodal`` (day 275), ``code-assist`` (day 380)
  and ``ads-ctr`` H100 (day 400) start mid-way with a linear ramp-up; their rows before the start are
  absent, not zero.
* Wind-down: ``nlp-legacy`` winds down linearly to 0 GPUs between days 310 and 460 and then stays at 0
  (rows continue, with 0 GPUs).
* Intermittent: ``model-eval`` (H100) is 0 most hours, with a 5-day evaluation campaign of 24, 32 or 48
  GPUs every quarter (every 91 days from day 30, starting within 2 days) and about one ad-hoc
  8-16 GPU burst of 6-36 hours per month (0 GPUs in about 92% of hours).
* ``gpus`` is clipped at 0 and rounded to 0.01 GPU.
* ``project``: the project that dominates the hour (the canonical frame has one row per hour, team and
  GPU model, so usage cannot be split by project). Each series has a schedule of base projects
  (1-3 over the 18 months); hours when one of its large jobs holds at least as many GPUs as the base
  load carry that job's project.
* ``utilization`` (0-1): a per-series mean (training 0.5-0.85, lowest for research teams; serving
  0.55-0.6; dev 0.25-0.3), higher when a serving team's load is above its daily mean, plus AR(1) noise
  (sd 0.04), clipped to 0.05-0.98 and rounded to 0.001; missing (NaN) in hours with 0 GPUs (no GPU, no
  utilisation).

Run ``python -m forecasting.samples --write`` to regenerate both shipped files (and the synthetic organisation's
storage and transfer lines, ``synthetic_org_data_costs.csv``, of :mod:`forecasting.sample_data_costs`).
"""

from __future__ import annotations

import argparse
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.events import Event
from usage.schema import (
    GPU_TYPE,
    GPUS,
    PROJECT,
    TEAM,
    TIMESTAMP,
    UTILIZATION,
    format_timestamp,
    validate_usage,
)

# --- shipped files --------------------------------------------------------------------------------
HELIOS_FILE = "helios_earth_may2020.csv"
SYNTHETIC_FILE = "synthetic_org.parquet"
PLAN_FILE = "synthetic_org_plan.yaml"
"""What the synthetic organisation planned over its 18 months (:func:`planned_events`), as an events file."""
SAMPLE_FILES = {"synthetic": SYNTHETIC_FILE, "helios": HELIOS_FILE}
SAMPLES = {
    "synthetic": "SYNTHETIC organisation (made up, seeded): 22 teams, 30 team x GPU series on H100/A100/L4/A10G, "
                 "hourly 2024-06-01 to 2025-11-30, with projects and utilisation.",
    "helios": "Real GPU demand of SenseTime Helios cluster Earth (V100), 16 virtual clusters, hourly, "
              "May 2020 (CC BY 4.0, Hu et al. SC'21).",
}
"""Sample name -> one-line description."""

SYNTHETIC_NOTE = ("SYNTHETIC data generated by forecasting.samples.generate_synthetic_org; "
                  "not any real organisation's usage.")
HELIOS_GPU_TYPE = "NVIDIA Tesla V100"
HELIOS_UTC_OFFSET_HOURS = 8
"""The Helios trace's wall clock is China Standard Time (UTC+8)."""

_REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HELIOS_TRACE = _REPO_ROOT / "tests" / "fixtures" / "helios" / "earth_vc_gpu_hourly.csv"


def data_dir() -> Path:
    """Folder holding the shipped samples: ``$GPUPLAN_DATA_DIR`` or the repository's ``data_samples``."""
    return Path(os.environ.get("GPUPLAN_DATA_DIR", _REPO_ROOT / "data_samples"))


# --- Helios ---------------------------------------------------------------------------------------
def build_helios_sample(trace_csv: str | Path) -> pd.DataFrame:
    """Build the canonical Helios Earth sample from the per-VC hourly trace.

    Args:
        trace_csv: ``earth_vc_gpu_hourly.csv`` (columns ``timestamp, team, gpus_demand, ...``;
            timestamps are UTC+8 wall clock).

    Returns:
        Frame ``timestamp, team, gpu_type, gpus`` with naive-UTC ``timestamp`` (trace time - 8 h),
        ``team`` = VC id, ``gpu_type`` = ``NVIDIA Tesla V100`` and ``gpus`` = ``gpus_demand``, sorted by
        (team, gpu_type, timestamp).
    """
    raw = pd.read_csv(trace_csv, usecols=["timestamp", "team", "gpus_demand"], dtype={"team": str})
    local = pd.to_datetime(raw["timestamp"], format="%Y-%m-%d %H:%M:%S")
    out = pd.DataFrame({
        TIMESTAMP: (local - pd.Timedelta(hours=HELIOS_UTC_OFFSET_HOURS)).astype("datetime64[ns]"),
        TEAM: raw["team"].astype(str).to_numpy(),
        GPU_TYPE: HELIOS_GPU_TYPE,
        GPUS: raw["gpus_demand"].astype(float).to_numpy(),
    })
    return out.sort_values([TEAM, GPU_TYPE, TIMESTAMP], kind="stable").reset_index(drop=True)


def write_helios_sample(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a Helios sample frame as CSV with ISO 8601 ``Z`` timestamps."""
    path = Path(path)
    out = df.copy()
    out[TIMESTAMP] = format_timestamp(out[TIMESTAMP])
    out.to_csv(path, index=False, lineterminator="\n")
    return path


# --- synthetic organisation -----------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """A large job that adds ``gpus`` GPUs for ``days`` days from ``start_day`` (days after the start)."""

    start_day: float
    days: float
    gpus: float
    project: str


@dataclass(frozen=True)
class SeriesSpec:
    """How one synthetic (team, gpu_type) series is generated. Times are days after ``start``.

    Attributes:
        team: team name.
        gpu_type: catalog GPU model.
        kind: ``training``, ``serving``, ``dev`` or ``eval`` (picks the daily profile).
        base: base GPUs in use when the series starts (before seasonality, jobs and noise).
        growth: yearly geometric growth of the base (0.5 = +50%/year, negative = decline).
        projects: ``(from_day, project)`` schedule of the base load's project.
        daily_amp: amplitude of the daily cosine (peak at ``peak_hour`` UTC).
        weekend_factor: multiplier of the base on Saturday and Sunday (UTC).
        noise: stationary standard deviation of the AR(1) log-noise.
        utilization: mean GPU utilisation (0-1).
        start_day: first day with rows (rows before are absent).
        ramp_days: linear ramp-up of the base after ``start_day``.
        wind_down: ``(from_day, to_day)``: the base falls linearly to 0 between them, then stays 0.
        jobs: large jobs (steps) with their own project.
        churn_per_week: Poisson rate of random experiment jobs (4-16 GPUs, 1-4 days).
        nightly_gpus: GPUs added every night 02:00-08:00 UTC (nightly retrain).
        bursts: ``(every_days, first_day, days, gpus)`` recurring campaigns (intermittent teams).
        adhoc_per_month: rate of random 8-16 GPU bursts of 6-36 hours (intermittent teams).
        peak_hour: UTC hour of the daily peak.
    """

    team: str
    gpu_type: str
    kind: str
    base: float
    growth: float
    projects: tuple[tuple[float, str], ...]
    daily_amp: float = 0.05
    weekend_factor: float = 0.9
    noise: float = 0.06
    utilization: float = 0.75
    start_day: float = 0.0
    ramp_days: float = 0.0
    wind_down: tuple[float, float] | None = None
    jobs: tuple[Job, ...] = ()
    churn_per_week: float = 0.0
    nightly_gpus: float = 0.0
    bursts: tuple[float, float, float, float] | None = None
    adhoc_per_month: float = 0.0
    peak_hour: float = 18.0


H100, A100, L4, A10G = "NVIDIA H100", "NVIDIA A100", "NVIDIA L4", "NVIDIA A10G"


def _serving(team: str, gpu: str, base: float, growth: float, projects: tuple[tuple[float, str], ...],
             amp: float = 0.45, weekend: float = 0.72, util: float = 0.55, **kw) -> SeriesSpec:
    return SeriesSpec(team, gpu, "serving", base, growth, projects, daily_amp=amp, weekend_factor=weekend,
                      noise=0.04, utilization=util, **kw)


def _training(team: str, gpu: str, base: float, growth: float, projects: tuple[tuple[float, str], ...],
              util: float = 0.8, **kw) -> SeriesSpec:
    kw.setdefault("daily_amp", 0.05)
    kw.setdefault("weekend_factor", 0.9)
    kw.setdefault("noise", 0.08)
    return SeriesSpec(team, gpu, "training", base, growth, projects, utilization=util, **kw)


def _dev(team: str, gpu: str, base: float, growth: float, projects: tuple[tuple[float, str], ...],
         util: float = 0.3, **kw) -> SeriesSpec:
    return SeriesSpec(team, gpu, "dev", base, growth, projects, daily_amp=0.0, weekend_factor=0.35,
                      noise=0.1, utilization=util, **kw)


DEFAULT_ORG: tuple[SeriesSpec, ...] = (
    # --- training, H100 ---------------------------------------------------------------------------
    _training("llm-pretrain", H100, 64, 0.6, ((0, "foundation-7b"), (200, "foundation-34b"),
                                              (400, "foundation-70b")),
              util=0.85, noise=0.05, churn_per_week=0.5,
              jobs=(Job(70, 21, 64, "foundation-34b-run"), Job(168, 21, 64, "foundation-34b-run"),
                    Job(259, 28, 128, "foundation-70b-run"), Job(371, 21, 64, "foundation-70b-ablation"),
                    Job(462, 24, 128, "foundation-70b-v2-run"))),
    _training("llm-finetune", H100, 32, 0.7, ((0, "instruct-tuning"), (250, "rlhf"), (420, "agents-sft")),
              util=0.78, churn_per_week=1.5,
              jobs=(Job(120, 7, 16, "customer-adapters"), Job(300, 7, 16, "customer-adapters"),
                    Job(455, 10, 24, "customer-adapters"))),
    SeriesSpec("model-eval", H100, "eval", 0.0, 0.0, ((0, "benchmark-suite"),), utilization=0.7,
               bursts=(91, 30, 5, 32), adhoc_per_month=1.0),
    _training("vision-research", H100, 16, 0.4, ((219, "video-diffusion"),), util=0.55, start_day=219,
              ramp_days=21, churn_per_week=1.0, noise=0.1),
    _training("multimodal", H100, 32, 0.8, ((275, "vlm-pretrain"), (400, "vlm-instruct")), util=0.8,
              start_day=275, ramp_days=30, churn_per_week=1.0,
              jobs=(Job(420, 21, 64, "vlm-scale-up"),)),
    _training("ads-ctr", H100, 8, 0.5, ((400, "ctr-transformer"),), util=0.75, start_day=400, ramp_days=14),
    # --- training, A100 ---------------------------------------------------------------------------
    _training("llm-pretrain", A100, 48, -0.4, ((0, "tokenizer-and-data"), (300, "data-filtering")),
              util=0.8),
    _training("llm-finetune", A100, 24, 0.0, ((0, "instruct-tuning"), (250, "eval-distillation")),
              util=0.72, churn_per_week=1.0),
    _training("search-ranking", A100, 16, 0.2, ((0, "ranker-v4"), (330, "ranker-v5")), util=0.75,
              churn_per_week=0.5),
    _training("recsys-train", A100, 24, 0.3, ((0, "two-tower"), (280, "sequence-recsys")), util=0.82,
              nightly_gpus=16, noise=0.05),
    _training("ads-ctr", A100, 20, 0.25, ((0, "ctr-dnn"), (400, "ctr-dnn-v2")), util=0.8, churn_per_week=0.5),
    _training("vision-research", A100, 24, 0.0, ((0, "detection"), (220, "segmentation")), util=0.5,
              noise=0.1, churn_per_week=2.0,
              jobs=(Job(45, 14, 32, "detection-sweep"), Job(190, 14, 32, "segmentation-sweep"))),
    _training("speech", A100, 16, -0.1, ((0, "asr-conformer"), (300, "tts")), util=0.75,
              churn_per_week=0.5),
    _training("nlp-legacy", A100, 24, 0.0, ((0, "bert-classifiers"), (310, "migration")), util=0.7,
              wind_down=(310, 460)),
    _training("robotics-sim", A100, 12, 0.5, ((0, "sim2real"), (350, "policy-learning")), util=0.65,
              churn_per_week=1.0, noise=0.1),
    _training("forecasting-ml", A100, 6, 0.0, ((0, "demand-forecast"),), util=0.7, noise=0.05),
    _training("bio-ml", A100, 8, 0.2, ((0, "protein-lm"), (270, "docking")), util=0.72, churn_per_week=0.5),
    # --- serving, L4 --------------------------------------------------------------------------------
    _serving("recsys-serving", L4, 24, 0.5, ((0, "home-feed"), (300, "home-feed-v2"))),
    _serving("llm-inference", L4, 20, 1.2, ((0, "chat-assistant"), (230, "chat-assistant-v2")), amp=0.4,
             weekend=0.75, util=0.6),
    _serving("search-ranking", L4, 12, 0.25, ((0, "query-understanding"),), amp=0.4, weekend=0.8),
    _serving("content-moderation", L4, 10, 0.3, ((0, "image-safety"), (200, "text-safety")), amp=0.3,
             weekend=0.85),
    _serving("code-assist", L4, 8, 1.0, ((380, "code-completion"),), amp=0.5, weekend=0.55, start_day=380,
             ramp_days=28),
    _dev("data-science", L4, 8, 0.2, ((0, "notebooks"), (240, "feature-exploration")), util=0.3),
    # --- serving, A10G ------------------------------------------------------------------------------
    _serving("llm-inference", A10G, 24, -0.4, ((0, "chat-assistant"), (230, "embeddings"))),
    _serving("recsys-serving", A10G, 16, 0.05, ((0, "related-items"),), amp=0.4, weekend=0.75),
    _serving("ads-serving", A10G, 20, 0.15, ((0, "ctr-inference"), (380, "ctr-inference-v2")), amp=0.35,
             weekend=0.8),
    _serving("speech", A10G, 10, 0.1, ((0, "asr-serving"),), amp=0.4, weekend=0.7),
    _serving("doc-ai", A10G, 8, 0.2, ((0, "ocr"), (260, "invoice-extraction")), amp=0.35, weekend=0.6),
    _training("fraud-ml", A10G, 6, 0.0, ((0, "transaction-scoring"),), util=0.6, daily_amp=0.15, noise=0.05),
    _dev("ml-platform", A10G, 12, 0.3, ((0, "shared-notebooks"), (300, "ci-gpu-runners")), util=0.25),
)
"""The default synthetic organisation (22 teams, 30 series)."""


def _ar1(rng: np.random.Generator, n: int, sd: float, phi: float = 0.97) -> np.ndarray:
    """AR(1) path of length ``n`` with stationary standard deviation ``sd``."""
    if sd <= 0 or n == 0:
        return np.zeros(n)
    kernel = phi ** np.arange(int(np.ceil(np.log(1e-6) / np.log(phi))))
    eps = rng.normal(0.0, sd * np.sqrt(1 - phi * phi), n + len(kernel))
    return np.convolve(eps, kernel)[len(kernel):len(kernel) + n]


def _daily_profile(kind: str, hour: np.ndarray, amp: float, peak: float) -> np.ndarray:
    if kind == "dev":
        # business hours 13:00-23:00 UTC (US), a floor of 25% overnight (forgotten notebooks)
        office = np.clip(1.6 * np.cos(2 * np.pi * (hour - peak) / 24) - 0.2, 0.0, 1.0)
        return 0.25 + 0.95 * office
    return 1.0 + amp * np.cos(2 * np.pi * (hour - peak) / 24)


def _series(spec: SeriesSpec, seed: int, ts: np.ndarray, day: np.ndarray, hour: np.ndarray,
            weekend: np.ndarray) -> pd.DataFrame:
    rng = np.random.default_rng([seed, zlib.crc32(f"{spec.team}|{spec.gpu_type}".encode())])
    n = len(ts)
    first = int(np.searchsorted(day, spec.start_day))
    ts, day, hour, weekend = ts[first:], day[first:], hour[first:], weekend[first:]
    m = len(ts)
    since = day - spec.start_day

    level = spec.base * (1.0 + spec.growth) ** (since / 365.25)
    if spec.ramp_days > 0:
        level = level * np.clip((since + 1 / 24) / spec.ramp_days, 0.0, 1.0)
    if spec.wind_down is not None:
        lo, hi = spec.wind_down
        level = level * np.clip((hi - day) / (hi - lo), 0.0, 1.0)
    season = _daily_profile(spec.kind, hour, spec.daily_amp, spec.peak_hour)
    season = season * np.where(weekend, spec.weekend_factor, 1.0)
    base = level * season * np.exp(_ar1(rng, m, spec.noise) + rng.normal(0.0, 0.02, m))

    extra = np.zeros(m)
    big = np.zeros(m)
    big_project = np.full(m, "", dtype=object)
    n_days = n / 24.0

    def add_block(start_h: int, length_h: int, gpus: float, *, outages: bool) -> tuple[int, int]:
        lo_h, hi_h = max(start_h - first, 0), min(start_h + length_h - first, m)
        if hi_h <= lo_h:
            return 0, 0
        block = np.full(hi_h - lo_h, float(gpus))
        if outages:
            for d in range(0, hi_h - lo_h, 24):
                if rng.random() < 0.15:
                    at = d + int(rng.integers(0, 24))
                    block[at:at + int(rng.integers(2, 9))] = 0.0
        big[lo_h:hi_h] += block
        return lo_h, hi_h

    for job in spec.jobs:
        lo_h, hi_h = add_block(int(job.start_day * 24), int(job.days * 24), job.gpus, outages=True)
        big_project[lo_h:hi_h] = job.project
    if spec.bursts is not None:
        every, first_day, days, gpus = spec.bursts
        for d0 in np.arange(first_day, n_days, every):
            size = gpus * float(rng.choice([0.75, 1.0, 1.5]))
            add_block(int(d0 * 24 + rng.integers(0, 48)), int(days * 24), size, outages=True)
    if spec.adhoc_per_month > 0:
        count = int(rng.poisson(spec.adhoc_per_month * n_days / 30.4))
        for at in np.sort(rng.integers(0, n, count)):
            add_block(int(at), int(rng.integers(6, 37)), float(rng.choice([8, 16])), outages=False)
    if spec.churn_per_week > 0:
        # random experiment jobs: steps that start and stop
        count = int(rng.poisson(spec.churn_per_week * n_days / 7))
        for at in np.sort(rng.integers(0, n, count)):
            length = int(24 * np.clip(rng.exponential(2.0), 1.0, 4.0))
            gpus = float(rng.choice([4, 8, 8, 16]))
            lo_h, hi_h = max(int(at) - first, 0), min(int(at) + length - first, m)
            if hi_h > lo_h:
                extra[lo_h:hi_h] += gpus * np.clip(level[lo_h:hi_h] / max(spec.base, 1e-9), 0.0, 1.0)
    if spec.nightly_gpus > 0:
        nightly = (hour >= 2) & (hour < 8)
        extra += np.where(nightly, spec.nightly_gpus * np.clip(level / max(spec.base, 1e-9), 0, 2), 0.0)

    gpus = np.round(np.maximum(base + extra + big, 0.0), 2)

    # project: the base schedule, or a large job's project when it holds at least the base load
    starts = np.array([p[0] for p in spec.projects], dtype=float)
    names = np.array([p[1] for p in spec.projects], dtype=object)
    project = names[np.clip(np.searchsorted(starts, day, side="right") - 1, 0, len(names) - 1)]
    own = (big_project != "") & (big >= base + extra)
    project = np.where(own, big_project, project)

    # utilisation: higher when the serving load is above its daily mean
    load_effect = 0.15 * (season / np.where(weekend, spec.weekend_factor, 1.0) - 1.0)
    util = spec.utilization + (load_effect if spec.kind == "serving" else 0.0) + _ar1(rng, m, 0.04, 0.9)
    util = np.round(np.clip(util, 0.05, 0.98), 3)
    util = np.where(gpus > 0, util, np.nan)

    return pd.DataFrame({TIMESTAMP: ts, TEAM: spec.team, GPU_TYPE: spec.gpu_type, GPUS: gpus,
                         PROJECT: project.astype(object), UTILIZATION: util})


def generate_synthetic_org(seed: int = 20251130, start: str = "2024-06-01", months: int = 18,
                           specs: Sequence[SeriesSpec] | None = None) -> pd.DataFrame:
    """Generate the SYNTHETIC sample organisation (assumptions in the module docstring).

    Args:
        seed: master seed; each series uses ``(seed, crc32("team|gpu_type"))``.
        start: first hour (UTC).
        months: calendar months of hourly data.
        specs: series to generate; default :data:`DEFAULT_ORG`.

    Returns:
        Canonical usage frame ``timestamp, team, gpu_type, gpus, project, utilization`` sorted by
        (team, gpu_type, timestamp).
    """
    begin = pd.Timestamp(start)
    end = begin + pd.DateOffset(months=months)
    ts = pd.date_range(begin, end, freq="h", inclusive="left").to_numpy(dtype="datetime64[ns]")
    hours_since = (ts - ts[0]) // np.timedelta64(1, "h")
    day = hours_since / 24.0
    hour = ((ts - ts.astype("datetime64[D]")) // np.timedelta64(1, "h")).astype(float)
    dow = (ts.astype("datetime64[D]").astype(np.int64) + 3) % 7  # Monday = 0
    weekend = dow >= 5
    parts = [_series(spec, seed, ts, day, hour, weekend) for spec in (specs or DEFAULT_ORG)]
    out = pd.concat(parts, ignore_index=True)
    out[TIMESTAMP] = out[TIMESTAMP].astype("datetime64[ns]")
    out = out.sort_values([TEAM, GPU_TYPE, TIMESTAMP], kind="stable").reset_index(drop=True)
    out.attrs["note"] = SYNTHETIC_NOTE
    return out


def planned_events(specs: Sequence[SeriesSpec] | None = None, start: str = "2024-06-01") -> tuple[Event, ...]:
    """What the synthetic organisation's platform team planned, as events (:mod:`forecasting.events`): each large
    job of a series (an ``add`` of its GPUs for its days; its failures and restarts are not planned), each
    wind-down, and each new series' launch (a ``ramp_up`` to its base GPUs over its ramp days). The random
    experiment jobs, bursts and noise are left out (nobody plans those).

    Args:
        specs: the organisation; default :data:`DEFAULT_ORG`.
        start: the organisation's first hour, as given to :func:`generate_synthetic_org`.
    """
    begin = pd.Timestamp(start)
    out: list[Event] = []
    for spec in specs or DEFAULT_ORG:
        for job in spec.jobs:
            first = begin + pd.Timedelta(hours=int(job.start_day * 24))
            out.append(Event(spec.team, "add", first, first + pd.Timedelta(hours=int(job.days * 24)), spec.gpu_type,
                             float(job.gpus), note=job.project, source="synthetic org plan"))
        if spec.wind_down is not None:
            lo, hi = spec.wind_down
            out.append(Event(spec.team, "wind_down", begin + pd.Timedelta(days=lo), begin + pd.Timedelta(days=hi),
                             spec.gpu_type, note="wind-down", source="synthetic org plan"))
        if spec.start_day > 0 and spec.ramp_days > 0:
            first = begin + pd.Timedelta(days=spec.start_day)
            out.append(Event(spec.team, "ramp_up", first, first + pd.Timedelta(days=spec.ramp_days), spec.gpu_type,
                             float(spec.base), note="launch", source="synthetic org plan"))
    return tuple(out)


def write_planned_events(events: Sequence[Event], path: str | Path) -> Path:
    """Write the synthetic organisation's plan (:func:`planned_events`) as a YAML events file
    (:func:`forecasting.events.load_events` reads it back), with a header saying what it is."""
    import yaml

    def when(ts: pd.Timestamp) -> str:
        return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.strftime("%Y-%m-%dT%H:%M:%SZ")

    items = [{"team": e.team, "gpu_type": e.gpu_type, "kind": e.kind, "start": when(e.start),
              **({"end": when(e.end)} if e.end is not None else {}),
              **({"gpus": float(e.gpus)} if e.gpus is not None else {}), "note": e.note} for e in events]
    header = ("# What the SYNTHETIC sample organisation (synthetic_org.parquet) planned over its 18 months: its large\n"
              "# jobs (add), the nlp-legacy wind-down and the launches of its new series (ramp_up). Made by\n"
              "# forecasting.samples.planned_events from the generator's own specification; the random experiment\n"
              "# jobs, bursts, failures and noise are not in it (nobody plans them). Give it to\n"
              "# `gpuplan anomalies --events` (or the app's Cost anomalies tab) so the planned runs are expected.\n")
    path = Path(path)
    path.write_text(header + yaml.safe_dump({"events": items}, sort_keys=False, width=120), encoding="utf-8")
    return path


def write_synthetic_sample(df: pd.DataFrame, path: str | Path) -> Path:
    """Write the synthetic frame as zstd-compressed parquet, with the SYNTHETIC note in its metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"gpuplan.note"] = SYNTHETIC_NOTE.encode()
    pq.write_table(table.replace_schema_metadata(meta), path, compression="zstd", compression_level=9)
    return path


# --- loaders --------------------------------------------------------------------------------------
def sample_path(name: str) -> Path:
    """Path of a shipped sample file."""
    if name not in SAMPLE_FILES:
        raise KeyError(f"unknown sample {name!r}; choose one of {', '.join(SAMPLE_FILES)}")
    return data_dir() / SAMPLE_FILES[name]


def load_sample(name: str = "synthetic") -> pd.DataFrame:
    """Load a shipped sample as a validated canonical usage frame.

    Args:
        name: ``synthetic`` or ``helios`` (see :data:`SAMPLES`).

    Returns:
        The frame returned by :func:`usage.schema.validate_usage`; ``attrs["sample"]`` holds the
        sample name and ``attrs["note"]`` its description.
    """
    path = sample_path(name)
    raw = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    df, _ = validate_usage(raw, source=path.name)
    df.attrs["sample"] = name
    df.attrs["note"] = SYNTHETIC_NOTE if name == "synthetic" else SAMPLES[name]
    return df


def write_samples(out_dir: str | Path | None = None, trace_csv: str | Path = DEFAULT_HELIOS_TRACE) -> list[Path]:
    """Regenerate the shipped sample files (both usage samples, the synthetic org's plan and its data-cost lines) in
    ``out_dir`` (default :func:`data_dir`)."""
    from forecasting.sample_data_costs import DATA_COSTS_FILE, generate_data_lines, write_data_lines

    out = Path(out_dir) if out_dir is not None else data_dir()
    out.mkdir(parents=True, exist_ok=True)
    org = generate_synthetic_org()
    return [write_synthetic_sample(org, out / SYNTHETIC_FILE),
            write_planned_events(planned_events(), out / PLAN_FILE),
            write_data_lines(generate_data_lines(org), out / DATA_COSTS_FILE),
            write_helios_sample(build_helios_sample(trace_csv), out / HELIOS_FILE)]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m forecasting.samples --write``: regenerate the shipped samples."""
    parser = argparse.ArgumentParser(prog="python -m forecasting.samples", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="regenerate the sample files")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: data_samples)")
    parser.add_argument("--trace", type=Path, default=DEFAULT_HELIOS_TRACE,
                        help="Helios earth_vc_gpu_hourly.csv (default: the test fixture copy)")
    args = parser.parse_args(argv)
    if not args.write:
        for name, text in SAMPLES.items():
            print(f"{name}: {text}")
        return 0
    for path in write_samples(args.out, args.trace):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
