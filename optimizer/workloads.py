"""Workload classes per team: what a team's jobs need from a GPU instance (read from a small YAML file).

Units: ``min_gpu_memory_gib`` is GiB of GPU memory per GPU; ``gpus_per_job`` is GPUs one job uses at once;
``checkpoint_interval_hours`` is hours of work between checkpoints (it sets the spot rework of the class,
see :func:`optimizer.catalog.rework_fraction`).

File format (``data_samples/workloads.yaml`` is an example for the synthetic organisation)::

    classes:                      # named workload classes
      llm-training:
        min_gpu_memory_gib: 80    # >= 0
        gpus_per_job: 8           # whole number >= 1
        fast_interconnect: true   # needs NVLink/NVSwitch inside the instance and EFA-class networking between
        spot_tolerant: true       # checkpointed: may run on spot capacity
        latency_bound: false      # serves users online: never on spot
        checkpoint_interval_hours: 0.5   # optional; default: the plan's --checkpoint interval
    teams:                        # team -> class, or GPU model the team uses today -> class
      llm-pretrain: llm-training
      search-ranking: {NVIDIA A100: ranking-training, NVIDIA L4: online-inference}
    default: batch                # optional: class for teams not listed

Teams that are not listed get the ``default`` class when the file names one. Otherwise they get the
**inferred default** (:func:`inferred_class`): the memory per GPU of the smallest instance of the GPU model
they run on today (so rightsizing never moves them to a GPU with less memory than they use now), one GPU
per job, no fast interconnect, not spot-tolerant (their checkpointing is unknown) and not latency-bound.
The routing table says which of the three sources applied to each team.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from usage import schema as S

FIELDS = ("min_gpu_memory_gib", "gpus_per_job", "fast_interconnect", "spot_tolerant", "latency_bound",
          "checkpoint_interval_hours")
ALL_GPU_TYPES = "*"
"""Key of a team's class mapping that applies to every GPU model the team uses."""

SOURCE_FILE = "workloads file"
SOURCE_FILE_DEFAULT = "workloads file default"
SOURCE_INFERRED = "inferred default"


class WorkloadsError(S.UsageError):
    """A mistake in a workloads file: one line naming the file, the key, the field and the fix."""

    def __init__(self, source: str, message: str, *, key: str | None = None, field: str | None = None,
                 fix: str | None = None) -> None:
        where = ([f"key '{key}'"] if key is not None else []) + ([f"field '{field}'"] if field is not None else [])
        super().__init__(source, message, column=field, fix=fix, where=where)


@dataclass(frozen=True)
class WorkloadClass:
    """What the jobs of a workload class need.

    Attributes:
        name: class name.
        min_gpu_memory_gib: GPU memory each GPU must have (GiB).
        gpus_per_job: GPUs one job uses at once; a job larger than an instance spans whole instances and then
            needs a fast (EFA-class) network.
        fast_interconnect: needs NVLink/NVSwitch between the instance's GPUs and EFA-class networking.
        spot_tolerant: checkpointed work that may run on spot.
        latency_bound: online serving; may never run on spot.
        checkpoint_interval_hours: hours between checkpoints (None = the plan's setting).
    """

    name: str
    min_gpu_memory_gib: float = 0.0
    gpus_per_job: int = 1
    fast_interconnect: bool = False
    spot_tolerant: bool = False
    latency_bound: bool = False
    checkpoint_interval_hours: float | None = None

    @property
    def may_use_spot(self) -> bool:
        return self.spot_tolerant and not self.latency_bound

    def describe(self) -> str:
        parts = [f">= {self.min_gpu_memory_gib:g} GiB/GPU", f"{self.gpus_per_job} GPU/job"]
        if self.fast_interconnect:
            parts.append("fast interconnect")
        parts.append("latency-bound" if self.latency_bound else ("spot-tolerant" if self.spot_tolerant else "no spot"))
        return ", ".join(parts)


@dataclass(frozen=True)
class Workloads:
    """Workload classes and which class each team (or team x current GPU model) belongs to.

    Attributes:
        classes: class name -> class.
        teams: team -> {current GPU model or ``*`` -> class name}.
        default: class for teams not listed (None = the inferred default).
        source: file name (for messages).
    """

    classes: Mapping[str, WorkloadClass] = field(default_factory=dict)
    teams: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    default: str | None = None
    source: str = "(no workloads file)"

    def class_for(self, team: str, gpu_type: str, inferred_memory_gib: float) -> tuple[WorkloadClass, str]:
        """The class of a team's work on ``gpu_type`` today and where it came from (file, file default, inferred)."""
        mapping = self.teams.get(team)
        if mapping is not None:
            name = mapping.get(gpu_type, mapping.get(ALL_GPU_TYPES))
            if name is not None:
                return self.classes[name], SOURCE_FILE
        if self.default is not None:
            return self.classes[self.default], SOURCE_FILE_DEFAULT
        return inferred_class(gpu_type, inferred_memory_gib), SOURCE_INFERRED


def inferred_class(gpu_type: str, memory_gib: float) -> WorkloadClass:
    """The default for a team the file does not list: keeps today's memory per GPU, 1 GPU per job, no spot."""
    return WorkloadClass(name=f"default ({gpu_type})", min_gpu_memory_gib=float(memory_gib))


def _bool(value: Any, source: str, key: str, name: str) -> bool:
    if isinstance(value, bool):
        return value
    raise WorkloadsError(source, f"expected true or false, got {value!r}", key=key, field=name,
                         fix=f"write {name}: true or {name}: false")


def _number(value: Any, source: str, key: str, name: str, *, minimum: float, whole: bool = False,
            strict: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and whole:
        ok = float(value).is_integer()
    if ok:
        ok = value > minimum if strict else value >= minimum
    if not ok:
        kind = "a whole number" if whole else "a number"
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise WorkloadsError(source, f"must be {kind} {bound}, got {value!r}", key=key, field=name,
                             fix=f"write e.g. {name}: {int(minimum) + 1 if whole or strict else minimum:g}")
    return float(value)


def parse_class(name: str, spec: Any, source: str) -> WorkloadClass:
    """Validate one class mapping."""
    key = f"classes.{name}"
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise WorkloadsError(source, f"a class must be a mapping of fields, got {type(spec).__name__}", key=key,
                             fix=f"write fields such as 'min_gpu_memory_gib: 24' under {name}:")
    for f in spec:
        if f not in FIELDS:
            raise WorkloadsError(source, "unknown field", key=key, field=str(f), fix=f"fields are {', '.join(FIELDS)}")
    cls = WorkloadClass(
        name=str(name),
        min_gpu_memory_gib=_number(spec.get("min_gpu_memory_gib", 0.0), source, key, "min_gpu_memory_gib",
                                   minimum=0.0),
        gpus_per_job=int(_number(spec.get("gpus_per_job", 1), source, key, "gpus_per_job", minimum=1, whole=True)),
        fast_interconnect=_bool(spec.get("fast_interconnect", False), source, key, "fast_interconnect"),
        spot_tolerant=_bool(spec.get("spot_tolerant", False), source, key, "spot_tolerant"),
        latency_bound=_bool(spec.get("latency_bound", False), source, key, "latency_bound"),
        checkpoint_interval_hours=(None if spec.get("checkpoint_interval_hours") is None else
                                   _number(spec["checkpoint_interval_hours"], source, key,
                                           "checkpoint_interval_hours", minimum=0.0, strict=True)),
    )
    if cls.latency_bound and cls.spot_tolerant:
        raise WorkloadsError(source, "a latency-bound class cannot be spot-tolerant (spot capacity can be taken back "
                                     "mid-request)", key=key, field="spot_tolerant",
                             fix="set spot_tolerant: false or latency_bound: false")
    return cls


def parse_workloads(data: Any, source: str, *, known_gpu_types: set[str] | None = None) -> Workloads:
    """Validate the parsed YAML document of a workloads file."""
    if data is None:
        return Workloads(source=source)
    if not isinstance(data, Mapping):
        raise WorkloadsError(source, f"expected a mapping with 'classes' and 'teams', got {type(data).__name__}",
                             fix="start the file with 'classes:' and 'teams:' sections")
    for key in data:
        if key not in ("classes", "teams", "default"):
            raise WorkloadsError(source, "unknown section", key=str(key), fix="sections are classes, teams, default")
    raw_classes = data.get("classes") or {}
    if not isinstance(raw_classes, Mapping):
        raise WorkloadsError(source, "must map class names to their fields", key="classes",
                             fix="write 'classes:' then one indented 'name:' block per class")
    classes = {str(n): parse_class(str(n), spec, source) for n, spec in raw_classes.items()}

    def known(name: Any, key: str) -> str:
        if not isinstance(name, str) or name not in classes:
            listed = ", ".join(sorted(classes)) or "none defined"
            raise WorkloadsError(source, f"unknown workload class {name!r}", key=key,
                                 fix=f"use one of the classes defined under 'classes:' ({listed})")
        return name

    raw_teams = data.get("teams") or {}
    if not isinstance(raw_teams, Mapping):
        raise WorkloadsError(source, "must map team names to a class", key="teams",
                             fix="write 'teams:' then one 'team-name: class-name' line per team")
    teams: dict[str, dict[str, str]] = {}
    for team, value in raw_teams.items():
        key = f"teams.{team}"
        if isinstance(value, Mapping):
            mapping = {}
            for gpu_type, name in value.items():
                gpu_type = str(gpu_type)
                if known_gpu_types is not None and gpu_type != ALL_GPU_TYPES and gpu_type not in known_gpu_types:
                    raise WorkloadsError(source, f"unknown GPU model '{gpu_type}'", key=key,
                                         fix="use the catalog's gpu_model names (e.g. 'NVIDIA A100') or '*'")
                mapping[gpu_type] = known(name, f"{key}.{gpu_type}")
            teams[str(team)] = mapping
        else:
            teams[str(team)] = {ALL_GPU_TYPES: known(value, key)}
    default = data.get("default")
    if default is not None:
        default = known(default, "default")
    return Workloads(classes=classes, teams=teams, default=default, source=source)


def load_workloads(path: str | Path, *, known_gpu_types: set[str] | None = None) -> Workloads:
    """Read and validate a workloads YAML file.

    Raises:
        WorkloadsError: one line naming the file, key, field and fix.
    """
    path = Path(path)
    name = path.name
    if path.suffix.lower() not in (".yaml", ".yml"):
        raise WorkloadsError(name, f"unsupported file type '{path.suffix or '(none)'}'",
                             fix="write the workload classes as .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadsError(name, f"cannot read the file ({exc.__class__.__name__})",
                             fix="check the path and that it is a UTF-8 text file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise WorkloadsError(name, f"not valid YAML{line} ({getattr(exc, 'problem', None) or 'parse error'})",
                             fix="check indentation and quote names containing ':' or '#'") from None
    return parse_workloads(data, name, known_gpu_types=known_gpu_types)
