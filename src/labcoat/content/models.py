"""The content schema: one pydantic model per kind of content file.

Over 500 lines on purpose: the whole content schema (schemas/*.schema.json is exported from it) in one file.

These models are the single source of truth: `lab validate` checks against them and
`schemas/*.schema.json` is exported from them (`python -m labcoat.content.schema`).
Every model forbids unknown keys and is strict, so `id: 5.10` (a float in YAML) is an
error with a hint to quote it rather than silently becoming "5.1".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from labcoat.units import parse_size

# A problem found after the schema passed: (where in the file, message, hint). `problems()` of a model lists
# them; the loader reports each at the line of its key (a cross reference needs the whole file to check).
Problem = tuple[tuple[str | int, ...], str, str | None]
GiB = 1024**3
MAX_MEMORY = 1024 * GiB  # 1 TiB: a sandbox limit beyond any host this runs on is a typo


def _no_parent(path: str) -> str:
    if any(part == ".." for part in path.replace("\\", "/").split("/")):
        raise ValueError("a path inside the content folder may not contain '..'")
    return path


LAB_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
SLUG = r"^[a-z][a-z0-9-]*$"
REL_PATH = r"^[^/\x00][^\x00]*$"
SIZE = r"^\d{1,15}(\.\d{1,6})?\s*([kKmMgG]i?[bB]?|[bB])?$"
VAR_REF = r"^\$\{[a-z_][a-z0-9_]*\}$"
VAR_NAME = r"^[a-z_][a-z0-9_]*$"
COMM = r"^([A-Za-z0-9_.-]{1,15}|\$\{[a-z_][a-z0-9_]*\})$"
NUMBER = r"^(\$\{[a-z_][a-z0-9_]*\}|[\d.]{1,20}\s*[kKmMgG]?i?[bB]?)$"
FUNCTION = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"

# Pattern errors say what is allowed in words, never the regular expression (loader.validation_errors).
PATTERN_WORDS = {
    LAB_ID: "letters, digits, '.', '_' and '-', starting with a letter or digit (e.g. \"5.3\", quoted)",
    SLUG: "lower-case letters, digits and '-', starting with a letter (e.g. part1, cache-fill)",
    REL_PATH: "a relative path (not starting with '/'), e.g. 5.3/part1.md",
    SIZE: "a size such as 64m, 256Mi, 1G or 1048576 (bytes): at most 15 digits, units b, k, m, g (binary)",
    VAR_REF: "a ${name} reference to a var (lower-case letters, digits and '_')",
    VAR_NAME: "lower-case letters, digits and '_', not starting with a digit (used as ${name})",
    COMM: "a process name of 1 to 15 letters, digits, '_', '.' or '-', or a ${var}",
    NUMBER: "a number, a size such as 64m (at most 20 digits and dots), or a ${var}",
    FUNCTION: "the name of a check function (a Python identifier, e.g. test_limit)",
}

LabId = Annotated[str, StringConstraints(pattern=LAB_ID, max_length=64)]
Slug = Annotated[str, StringConstraints(pattern=SLUG, max_length=64)]
RelPath = Annotated[str, StringConstraints(pattern=REL_PATH, min_length=1, max_length=1024),
                    AfterValidator(_no_parent)]
Size = Annotated[
    str,
    StringConstraints(pattern=SIZE),
    Field(description="A size such as 64m, 256Mi, 1G or 1048576 (bytes)."),
]
Title = Annotated[str, StringConstraints(min_length=1, max_length=200)]


def _bounded_size(value: str | None) -> str | None:
    if value is not None and parse_size(value) > MAX_MEMORY:
        raise ValueError("at most 1 TiB (1024g)")
    return value


class Model(BaseModel):
    # defer_build: schemas are built on first validation, so loading the cached catalog stays cheap.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True, allow_inf_nan=False)

    def problems(self) -> list[Problem]:
        """What the schema cannot say: undefined references, duplicate names (see Problem)."""
        return []


class SandboxSpec(Model):
    """The disposable container a lab or scenario runs in."""

    image: Slug = Field(description="Id of an image under images/ (its image.yaml 'id').")
    memory: Size = Field(
        description="Hard memory limit (docker --memory). --memory-swap is set equal (plus `swap` when given)."
    )
    pids_limit: int = Field(256, ge=16, le=100_000, description="Maximum number of processes in the sandbox.")
    cpus: float | None = Field(None, gt=0, le=1024, description="CPU limit (docker --cpus); none by default.")
    network: bool = Field(False, description="Give the sandbox a network. Off by default: labs work offline.")
    cap_add: tuple[str, ...] = Field(
        (), description="Capabilities added to the default set, e.g. SYS_RESOURCE (needs host support)."
    )
    swap: Size | None = Field(
        None, description="Swap the sandbox may use on top of `memory` (docker --memory-swap = memory + swap). "
        "Unset: none, --memory-swap equals --memory. Only has an effect on a host with swap.",
    )
    disk: Size = Field(
        "256m", description="The most the sandbox may write to its own disk (the container's writable layer): "
        "no file bigger (RLIMIT_FSIZE, enforced by the kernel), and while `lab grade` runs a script, not more in "
        "all (checked from the host; the script is stopped at the limit). Folders in `tmpfs` are not on disk.",
    )
    tmpfs: dict[str, Size] = Field(
        default_factory=lambda: {"/tmp": "64m", "/var/tmp": "16m"},
        description="Scratch folders kept in memory, each with a size limit (absolute path -> size). Their "
        "pages are charged to the sandbox's memory cgroup, so `memory` bounds them too. Files here are never "
        "in the page cache of a disk file: keep files a lab reads cold (page-cache tasks) elsewhere.",
    )
    read_only_root: bool = Field(
        False, description="Mount the root filesystem read-only: then only the `tmpfs` folders are writable (a "
        "hard disk bound of zero). Off for labs that need real, evictable page cache of disk files.",
    )
    cpu_shares: int = Field(
        1024, ge=2, le=262144, description="Relative CPU weight (docker --cpu-shares; cgroup v2 cpu.weight is "
        "derived from it). `lab grade` also caps each grading sandbox with --cpus so that `--jobs N` sandboxes "
        "together never get more CPUs than the host has.",
    )
    io_weight: int = Field(
        100, ge=10, le=1000, description="Relative block I/O weight (docker --blkio-weight: blkio.weight on v1, "
        "io.weight on v2), applied where the host's I/O scheduler supports weights.",
    )

    @field_validator("memory")
    @classmethod
    def _real_limit(cls, value: str) -> str:
        # Docker reads 0 as "no limit" and refuses less than 6 MiB; a lab needs a real limit.
        if parse_size(value) < 6 * 1024 * 1024:
            raise ValueError("a sandbox needs a real memory limit of at least 6m")
        return _bounded_size(value)  # type: ignore[return-value]

    @field_validator("swap")
    @classmethod
    def _sane_swap(cls, value: str | None) -> str | None:
        return _bounded_size(value)

    @property
    def memory_bytes(self) -> int:
        return parse_size(self.memory)

    @property
    def swap_bytes(self) -> int:
        return parse_size(self.swap) if self.swap else 0

    @field_validator("tmpfs")
    @classmethod
    def _tmpfs_paths(cls, value: dict[str, str]) -> dict[str, str]:
        for path in value:
            if not re.fullmatch(r"(/[A-Za-z0-9._-]+)+", path) or path in ("/proc", "/sys", "/dev"):
                raise ValueError(f"tmpfs folder {path!r}: give an absolute path such as /tmp (not /proc, /sys, /dev)")
        return value

    @property
    def disk_bytes(self) -> int:
        return parse_size(self.disk)

    @property
    def tmpfs_bytes(self) -> dict[str, int]:
        return {path: parse_size(size) for path, size in self.tmpfs.items()}


# ----------------------------------------------------------------------------- scenario steps


class StepArgs(Model):
    """The arguments of one step kind. A new kind is an args model here, a field of `Step`, and a
    handler registered with `labcoat.runner.steps.step_kind` (see docs/authoring.md)."""

    # True: the step observes a scenario run (samples, marks, timings, expectations), so it runs only
    # in a scenario run (`lab run`, `lab provoke`), never while a part is prepared.
    observing: ClassVar[bool] = False
    # Labels (Scenario.problems checks them): (field, what it names) this step refers to, which an
    # earlier step must define; what this step defines (with its `label` field, if it has one).
    label_refs: ClassVar[tuple[tuple[str, str], ...]] = ()
    defines: ClassVar[str | None] = None


class ObservingArgs(StepArgs):
    observing: ClassVar[bool] = True


class RunArgs(StepArgs):
    """Run a shell command inside the sandbox."""

    cmd: str = Field(description="Shell command, run with /bin/sh -c inside the sandbox.")
    background: bool = Field(False, description="Start it and go on; it is stopped with the sandbox.")
    timeout: float = Field(60, gt=0, le=86400, description="Seconds before a foreground command is stopped.")
    ok_exit: tuple[int, ...] = Field((0,), description="Exit codes that count as success (foreground).")
    user: str | None = Field(None, description="Run as this user instead of root.")


VarRef = Annotated[str, StringConstraints(pattern=VAR_REF)]


class QosArgs(Model):
    """A Kubernetes QoS class, turned into an oom_score_adj the way the kubelet does it."""

    qos_class: Literal["guaranteed", "burstable", "besteffort"] = Field(
        alias="class", description="Guaranteed (-997), Burstable (1000 - 1000*request/capacity, clamped to "
        "[3, 999]) or BestEffort (1000): kubelet pkg/kubelet/qos/policy.go.",
    )
    request: Size | None = Field(None, description="Burstable: the container's memory request, e.g. 256Mi.")
    capacity: Size | None = Field(None, description="Burstable: the node's memory capacity, e.g. 1Gi.")

    @model_validator(mode="after")
    def _burstable_needs_sizes(self) -> QosArgs:
        if self.qos_class == "burstable":
            if not self.request or not self.capacity:
                raise ValueError("class burstable needs both 'request' and 'capacity'")
            if parse_size(self.capacity) == 0:
                raise ValueError("capacity must not be 0")
        elif self.request or self.capacity:
            raise ValueError(f"'request' and 'capacity' only apply to class burstable, not {self.qos_class}")
        return self


class HogArgs(StepArgs):
    """Start the image's memory hog inside the sandbox (always under its memory limit)."""

    name: Annotated[str, StringConstraints(pattern=COMM)] = Field(
        description="Process name (comm, at most 15 characters) the hog runs under, or a ${var}."
    )
    mib: Annotated[int, Field(gt=0, le=1024 * 1024)] | VarRef = Field(
        description="MiB of anonymous memory to allocate and hold, or a ${var}."
    )
    step_mib: int = Field(4, gt=0, le=1024, description="MiB touched per step.")
    step_ms: int = Field(20, ge=0, le=60_000, description="Milliseconds between steps.")
    oom_score_adj: Annotated[int, Field(ge=-1000, le=1000)] | VarRef = Field(
        0, description="Value the hog writes to its oom_score_adj, or a ${var}."
    )
    wait: bool = Field(True, description="Wait until the hog holds all its memory before the next step.")
    qos: QosArgs | None = Field(
        None, description="Set oom_score_adj from a Kubernetes QoS class instead of oom_score_adj; where the "
        "host forbids negative values the nearest allowed one is used and the run says so.",
    )

    @model_validator(mode="after")
    def _adj_or_qos(self) -> HogArgs:
        if self.qos is not None and self.oom_score_adj != 0:
            raise ValueError("give either 'oom_score_adj' or 'qos', not both")
        return self


class FillCacheArgs(StepArgs):
    """Write a file of the given size inside the sandbox, so its pages sit in the page cache."""

    path: str = Field(description="Absolute path of the file inside the sandbox.")
    size: Annotated[Size, AfterValidator(_bounded_size)] = Field(description="How big the file is.")
    sync: bool = Field(True, description="Write back dirty pages afterwards so the cache is clean.")


class SleepArgs(StepArgs):
    seconds: float = Field(gt=0, le=600)


class ReclaimArgs(StepArgs):
    """Drop the sandbox cgroup's page cache from the host side (force_empty / memory.reclaim)."""

    note: str | None = Field(None, description="Why this step runs (shown in the live view).")


class WriteFileArgs(StepArgs):
    """Write a file inside the sandbox (e.g. seeded data for a part)."""

    path: str
    content: str
    mode: int = Field(0o644, ge=0, le=0o7777)


Metric = Literal[
    "usage", "limit", "anon", "file", "shmem", "workingset", "file_dirty", "swap", "oom_kill", "oom",
    "inactive_file",
    "psi_some_avg10", "psi_full_avg10", "psi_some_total", "psi_full_total",
    "host_psi_some_avg10", "host_psi_full_avg10", "host_psi_some_total", "host_psi_full_total",
    "pressure_some_avg10", "pressure_full_avg10", "pressure_some_total", "pressure_full_total",
    "host_pswpin", "host_pswpout",
]
Op = Literal[">=", ">", "==", "<=", "<", "!="]
Number = Annotated[str, StringConstraints(pattern=NUMBER)] | int | float


class SampleArgs(ObservingArgs):
    """Start sampling the sandbox's memory cgroup (and PSI) in the background until the end."""

    interval: float = Field(0.25, ge=0.02, le=10, description="Seconds between samples.")


class WaitForArgs(ObservingArgs):
    """Wait until the latest sample's metric satisfies the condition (read afresh every 50 ms)."""

    label_refs = (("since", "mark"),)

    metric: Metric
    op: Op = ">="
    value: Number
    timeout: float = Field(30, gt=0, le=600)
    fail: bool = Field(True, description="Fail the scenario on timeout (else just go on).")
    since: Slug | None = Field(
        None, description="Compare the change since this `mark` instead of the value itself, e.g. OOM kills "
        "since the mark (the counter is cumulative over the sandbox's life).",
    )


class MarkArgs(ObservingArgs):
    """Take a sample now and name this moment, so later `expect`/`expect_kills` can look only after it."""

    defines = "mark"

    label: Slug


class ExpectArgs(ObservingArgs):
    """A condition on the samples taken so far; it holds, it does not, or (when the host cannot show the
    metric) it is unobservable, which counts as neither."""

    label_refs = (("since", "mark"),)

    metric: Metric
    agg: Literal["first", "last", "min", "max", "delta"] = Field(
        "last", description="Which figure of the samples: delta is last minus first."
    )
    op: Op
    value: Number
    message: str = Field(description="What the expectation means, shown in the summary.")
    since: Slug | None = Field(None, description="Only the samples from this `mark` on (default: all).")


class ProcsArgs(ObservingArgs):
    """Take a snapshot of every process in the sandbox (RSS, page tables, oom_score_adj, oom_score)."""

    defines = "procs"

    label: Slug


class PredictArgs(ObservingArgs):
    """Predict the OOM victim from a procs snapshot with the kernel's memcg arithmetic."""

    label_refs = (("procs", "procs"),)
    defines = "predict"

    procs: Slug = Field(description="Label of an earlier procs step.")
    ask: bool = Field(False, description="With `lab run --predict`, ask the user to predict first.")
    answer_file: str | None = Field(None, description="A learner's answers file to read the prediction from.")
    answer_key: str = Field("victim_pid", description="Key in answer_file holding the predicted PID.")


class ExpectVictimArgs(ObservingArgs):
    """Exactly one process was OOM-killed between two procs snapshots, and it is the predicted one."""

    label_refs = (("before", "procs"), ("after", "procs"))

    before: Slug
    after: Slug
    message: str = "the kernel killed the process the memcg arithmetic predicted"


class ExpectPredictionArgs(ObservingArgs):
    """A condition on the last `predict`: e.g. /proc/PID/oom_score points at another process."""

    label_refs = (("", "predict"),)  # no field: any earlier predict step

    oom_score_pick: Literal["differs", "same"] | None = Field(
        None, description="The process /proc/PID/oom_score ranks highest differs from (or is) the memcg victim.",
    )
    min_margin_pages: int = Field(
        0, ge=0, description="The predicted victim's badness beats the runner-up's by at least this many pages.",
    )
    message: str = "the memcg arithmetic and /proc/PID/oom_score disagree"


class ExpectKillsArgs(ObservingArgs):
    """Conditions on the OOM kills the runner saw (counter deltas, victims' names from the kernel log)."""

    label_refs = (("since", "mark"),)

    count: int | None = Field(None, ge=0, description="Exactly this many OOM kills.")
    victims: tuple[str, ...] | None = Field(
        None, description="The victims' process names in the order they were killed (needs the kernel log: "
        "unobservable without host root).",
    )
    max_latency_ms: float | None = Field(
        None, gt=0, description="Each kill noticed within this many ms of the kernel's own timestamp "
        "(unobservable without the kernel log).",
    )
    since: Slug | None = Field(None, description="Only kills after this `mark` (default: all).")
    message: str


class TimeReadArgs(ObservingArgs):
    """Time reading a whole file inside the sandbox (cat > /dev/null)."""

    defines = "time_read or time_run"

    path: str
    label: Slug


class TimeRunArgs(ObservingArgs):
    """Time a shell command inside the sandbox (wall clock, measured inside)."""

    defines = "time_read or time_run"

    cmd: str
    label: Slug
    timeout: float = Field(120, gt=0, le=86400)
    ok_exit: tuple[int, ...] = Field((0,), description="Exit codes that count as success.")


class ExpectFasterArgs(ObservingArgs):
    """A timed read (or run) was at least `factor` times faster than another."""

    label_refs = (("fast", "time_read or time_run"), ("slow", "time_read or time_run"))

    fast: Slug
    slow: Slug
    factor: float = Field(1.5, gt=1)
    message: str = "warm reads are faster than cold reads"


StepName = Literal["run", "hog", "fill_cache", "sleep", "reclaim", "write_file", "sample", "wait_for",
                   "expect", "procs", "predict", "expect_victim", "time_read", "expect_faster",
                   "mark", "expect_kills", "expect_prediction", "time_run"]


class Step(Model):
    """One step of a scenario: exactly one of the keys below."""

    run: RunArgs | None = None
    hog: HogArgs | None = None
    fill_cache: FillCacheArgs | None = None
    sleep: SleepArgs | None = None
    reclaim: ReclaimArgs | None = None
    write_file: WriteFileArgs | None = None
    sample: SampleArgs | None = None
    wait_for: WaitForArgs | None = None
    expect: ExpectArgs | None = None
    procs: ProcsArgs | None = None
    predict: PredictArgs | None = None
    expect_victim: ExpectVictimArgs | None = None
    time_read: TimeReadArgs | None = None
    expect_faster: ExpectFasterArgs | None = None
    mark: MarkArgs | None = None
    expect_kills: ExpectKillsArgs | None = None
    expect_prediction: ExpectPredictionArgs | None = None
    time_run: TimeRunArgs | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            valid = ", ".join(type(self).model_fields)
            raise ValueError(f"a step has exactly one of: {valid}; found {len(given)} ({', '.join(given)})")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)

    @property
    def args(self) -> StepArgs:
        return getattr(self, self.kind)  # type: ignore[no-any-return]

    @property
    def observing(self) -> bool:
        """The step observes a scenario run: not allowed in a part's `prepare`."""
        return self.args.observing

    @classmethod
    def args_model(cls, kind: str) -> type[StepArgs]:
        """The args model of a step kind (KeyError: no such kind)."""
        return next(a for a in get_args(cls.model_fields[kind].annotation) if a is not type(None))  # type: ignore[no-any-return]


class VarSpec(Model):
    """A per-sandbox random value, drawn from the sandbox's seed: exactly one of choice/between."""

    choice: tuple[str, ...] | None = Field(
        None, min_length=1, description="Pick one; values already picked from the same list are not picked again."
    )
    between: tuple[int, int] | None = Field(None, description="A whole number in [low, high].")

    @model_validator(mode="after")
    def _one(self) -> VarSpec:
        if (self.choice is None) == (self.between is None):
            raise ValueError("give exactly one of 'choice' or 'between'")
        if self.between and self.between[0] > self.between[1]:
            raise ValueError("between: the low end is above the high end")
        return self


Feature = Literal["psi", "swap", "negative_oom_adj", "cgroup_v1", "cgroup_v2"]
_VAR_USE = re.compile(r"\$\{([a-z_][a-z0-9_]*)\}")
# `hog --name X` (or any program's) in a run command: X is a process name the scenario starts.
_NAME_OPTION = re.compile(r"--name[ =]+['\"]?(\$\{[a-z_][a-z0-9_]*\}|[A-Za-z0-9_.:-]{1,15})")


def _strings(value: object, loc: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every text in a model (by the keys of its YAML file) with where it is."""
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, tuple):
        for i, item in enumerate(value):
            yield from _strings(item, loc + (i,))
    elif isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            item = getattr(value, name)
            if item is not None:
                yield from _strings(item, loc + (info.alias or name,))


class Scenario(Model):
    """scenarios/<id>.yaml: a closed-vocabulary script that provokes and observes the kernel."""

    schema_version: int = Field(description="Always 1 for this labcoat.")
    id: Slug
    title: Title
    description: str = ""
    sandbox: SandboxSpec | None = Field(
        None, description="Sandbox to start when run on its own; a lab part runs it in the lab's sandbox."
    )
    requires: tuple[Feature, ...] = Field((), description="Host features without which it is skipped.")
    vars: dict[Annotated[str, StringConstraints(pattern=VAR_NAME)], VarSpec] = Field(
        default_factory=dict, description="Random values per sandbox seed; use them as ${name} in steps."
    )
    steps: tuple[Step, ...] = Field(min_length=1)
    duration_hint: str = Field("", description="How long it takes, shown by `lab scenarios`.")

    def problems(self) -> list[Problem]:
        """Every ${var} declared; every label a step names defined by an earlier step; numeric vars numeric."""
        out: list[Problem] = []
        declared = ", ".join(self.vars) or "none"
        for loc, text in _strings(self.steps, ("steps",)):
            for name in _VAR_USE.findall(text):
                if name not in self.vars:
                    out.append((loc, f"${{{name}}} is not a declared var",
                                f"declare it under 'vars:' (declared here: {declared})"))
        defined: dict[str, set[str]] = {}
        for i, step in enumerate(self.steps):
            at = ("steps", i, step.kind)
            args = step.args
            for key, what in args.label_refs:
                if not key:  # no label to name: any earlier step of that kind
                    if what not in defined:
                        out.append((at, f"{step.kind} needs a {what} step before it", None))
                    continue
                label = getattr(args, key)
                if label is not None and label not in defined.get(what, set()):
                    known = ", ".join(sorted(defined.get(what, set()))) or "none"
                    out.append((at + (key,), f"{step.kind}.{key}: no earlier {what} step is labelled {label!r}",
                                f"labels defined before this step: {known}"))
            if args.defines is not None:
                defined.setdefault(args.defines, set()).add(str(getattr(args, "label", "")))
            if step.kind == "hog":
                out += self._numeric_vars(step.args, at)  # type: ignore[arg-type]
        return out

    def process_names(self) -> set[str]:
        """Every process name this scenario may start: hog names and `--name X` in run commands,
        a ${var} standing for each of its choices."""
        names: set[str] = set()

        def expand(value: str) -> None:
            match = _VAR_USE.fullmatch(value)
            spec = self.vars.get(match.group(1)) if match else None
            if spec is not None and spec.choice is not None:
                names.update(spec.choice)
            elif match is None:
                names.add(value)

        for step in self.steps:
            if step.kind == "hog":
                expand(str(step.args.name))  # type: ignore[attr-defined]
            elif step.kind == "run":
                for value in _NAME_OPTION.findall(step.args.cmd):  # type: ignore[attr-defined]
                    expand(value)
        return names

    def commands(self) -> str:
        """The text of every shell command the scenario runs (where a `pkill -x` would name processes)."""
        return "\n".join(step.args.cmd for step in self.steps if step.kind == "run")  # type: ignore[attr-defined]

    def _numeric_vars(self, hog: HogArgs, at: tuple[str | int, ...]) -> list[Problem]:
        """A ${var} standing for a number must be a `between` var, or a `choice` of whole numbers."""
        out: list[Problem] = []
        for key in ("mib", "oom_score_adj"):
            value = getattr(hog, key)
            match = _VAR_USE.fullmatch(value) if isinstance(value, str) else None
            spec = self.vars.get(match.group(1)) if match else None
            if spec is not None and spec.choice is not None and not all(
                    re.fullmatch(r"-?[0-9]{1,9}", c) for c in spec.choice):
                out.append((at + (key,), f"hog.{key}: ${{{match.group(1)}}} must stand for a whole number, "  # type: ignore[union-attr]
                            "but its choices are not all whole numbers", "use `between: [low, high]`"))
        return out


# ----------------------------------------------------------------------------- labs


class Decoy(Model):
    """A plausible wrong answer: the part's checks must fail after it."""

    name: Slug
    script: RelPath = Field(description="Shell script (relative to the lab file) run in the sandbox.")
    why: str = Field(description="The mistake it stands for, shown by `lab selftest`.")


class LearnerDocker(Model):
    """What a `runs_on: host` part's script may do with `docker` when `lab grade` runs it (through a proxy)."""

    image: Slug = Field(description="Id of the image (under images/) the learner's containers must use.")
    max_memory: Size = Field(description="Highest --memory a container may ask for (--memory-swap must equal it).")
    max_containers: int = Field(2, ge=1, le=20, description="Containers that may exist at a time.")
    pids_limit: int = Field(64, ge=8, description="Processes per container (a lower --pids-limit is kept).")
    cpus: float = Field(1.0, gt=0, description="CPUs per container (docker --cpus) at most.")

    @property
    def max_memory_bytes(self) -> int:
        return parse_size(self.max_memory)


class Part(Model):
    id: Slug
    title: Title
    instructions: RelPath = Field(description="Markdown file, relative to the lab file.")
    follow_along: bool = Field(
        False, description="Nothing to verify (e.g. a Killercoda step without a verify script): `lab check` says "
        "so, selftest and grading skip it; `checks` then names a file without checks, and `points` is 0.",
    )
    points: int = Field(ge=0, le=10_000, description="Points of the part: more than 0, except 0 for a follow-along part.")

    @field_validator("points")
    @classmethod
    def _points_unless_follow_along(cls, points: int, info: Any) -> int:
        from pydantic_core import PydanticCustomError

        if info.data.get("follow_along"):
            if points != 0:
                raise PydanticCustomError("follow_along_points", "a follow-along part has 0 points")
        elif points <= 0:
            raise PydanticCustomError("greater_than", "Input should be greater than {gt}", {"gt": 0})
        return points

    prepare: tuple[Slug, ...] = Field((), description="Scenario ids run in the sandbox to prepare this part.")
    checks: RelPath = Field(description="pytest-testinfra file, relative to the content's checks/ folder.")
    check_points: dict[Annotated[str, StringConstraints(pattern=FUNCTION)], Annotated[int, Field(gt=0, le=10_000)]] = Field(
        default_factory=dict,
        description="Points per check function; checks not named share what is left of `points` equally.",
    )
    solution: RelPath = Field(description="Reference solution script (relative to the lab file).")
    decoys: tuple[Decoy, ...] = Field(min_length=1, description="At least one plausible wrong answer.")
    requires: tuple[Feature, ...] = Field((), description="Host features without which the part is skipped.")
    sandbox: SandboxSpec | None = Field(
        None,
        description="Give this part a sandbox of its own (own memory cgroup), e.g. when it provokes OOM kills "
        "or pressure that would disturb the other parts. `lab shell PART` opens it.",
    )
    runs_on: Literal["sandbox", "host"] = Field(
        "sandbox", description="Where the solution and decoy scripts run: inside the sandbox, or on the host "
        "(for tasks that use the docker CLI, e.g. running a container of one's own).",
    )
    provoke: Slug | None = Field(
        None, description="Scenario the learner runs with `lab provoke PART` (in the part's sandbox); the runner "
        "keeps what it measured for the checks to compare with.",
    )
    provoke_when: Literal["after", "during"] = Field(
        "after", description="For grading and selftest: provoke after the learner's script, or while it runs.",
    )
    learner_containers: tuple[str, ...] = Field(
        (), description="Names of containers the learner creates on the host in this part; `lab stop` and "
        "`lab reset` remove them.",
    )
    learner_docker: LearnerDocker | None = Field(
        None, description="For `runs_on: host`: the policy `lab grade` enforces on the script's docker commands "
        "(unset: the lab's image, the memory of the part's sandbox, 2 containers).",
    )


class Lab(Model):
    """labs/<id>.yaml: one hands-on lab."""

    schema_version: int
    id: LabId = Field(description="Lab id, always quoted: \"5.3\".")
    title: Title
    intro: RelPath = Field(description="Markdown shown by `lab start` (relative to the lab file).")
    sandbox: SandboxSpec
    parts: tuple[Part, ...] = Field(min_length=1)
    quiz: LabId | None = Field(None, description="Id of the quiz under quizzes/ that belongs to this lab.")
    quiz_points: int = Field(0, ge=0, description="Points the quiz is worth when grading.")
    pass_mark: float = Field(0.6, ge=0, le=1, description="Fraction of all points needed to pass `lab grade`.")

    def problems(self) -> list[Problem]:
        """Part ids unique in the lab, decoy names unique in their part."""
        out: list[Problem] = []
        parts: dict[str, int] = {}
        for i, part in enumerate(self.parts):
            if part.id in parts:
                out.append((("parts", i, "id"), f"part id {part.id!r} is used twice (also parts[{parts[part.id]}])",
                            "give every part an id of its own"))
            parts.setdefault(part.id, i)
            names: set[str] = set()
            for j, decoy in enumerate(part.decoys):
                if decoy.name in names:
                    out.append((("parts", i, "decoys", j, "name"), f"{part.id}: decoy name {decoy.name!r} is used "
                                "twice", "give every decoy of a part a name of its own"))
                names.add(decoy.name)
        return out

    def part(self, part_id: str) -> Part:
        for part in self.parts:
            if part.id == part_id:
                return part
        raise KeyError(part_id)


# ----------------------------------------------------------------------------- images


class CompileSpec(Model):
    """A C source compiled statically on the build host and copied into the image."""

    src: RelPath
    dest: str


class InstallSpec(Model):
    """A file (e.g. a script) from the image folder copied into the image, executable."""

    src: RelPath
    dest: str


class Image(Model):
    """images/<id>/image.yaml: how to build a sandbox image, offline or from a registry."""

    schema_version: int
    id: Slug
    description: str = ""
    suite: str = Field("bookworm", description="Debian suite debootstrap installs.")
    packages: tuple[str, ...] = Field((), description="Debian packages added to the minbase variant.")
    compile: tuple[CompileSpec, ...] = Field((), description="Static C programs built into the image.")
    install: tuple[InstallSpec, ...] = Field((), description="Files copied into the image as they are (mode 0755).")
    dockerfile: RelPath | None = Field("Dockerfile", description="Dockerfile used where a registry is reachable.")
    requires_commands: tuple[str, ...] = Field(
        (), description="Commands that must exist in the built image (checked after the build)."
    )

    @field_validator("packages")
    @classmethod
    def _package_names(cls, packages: tuple[str, ...]) -> tuple[str, ...]:
        for name in packages:
            if not re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", name):
                raise ValueError(f"{name!r} is not a Debian package name")
        return packages
