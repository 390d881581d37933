"""One sandbox lifecycle: label, start, prepare, and always clean up by label.

Every use of sandboxes (`lab start`, `lab selftest`, `lab grade`, a standalone `lab run`)
goes through a `Lifecycle`: each sandbox starts with labels that include the lifecycle's
`selector` (owner, session, kind), so whatever an interruption leaves (a container the
engine was still creating when Ctrl-C came, one whose handle never came back) is found
and removed by those labels. What happens at the end of the `with` block is `keep`:

- "never" (disposable uses: selftest, grading, a standalone scenario): removed on every exit;
- "on_success" (`lab start`): kept when the block ends normally, removed on an error or Ctrl-C;
- "always" (`lab selftest --keep`): kept whatever happens, once the sandboxes were started.

`keep` may change inside the block (selftest keeps only once its sandboxes are ready).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from labcoat.backends.base import Backend, Machine, MachineSpec
from labcoat.errors import LabError

if TYPE_CHECKING:
    from labcoat.content.catalog import Catalog
    from labcoat.content.models import Part
    from labcoat.runner.session import LabSession

T = TypeVar("T")
Keep = Literal["never", "on_success", "always"]


def parallel(jobs: list[Callable[[], T]]) -> list[T]:
    """Run jobs in threads; return their results in order, re-raising the first failure.

    Sandboxes are independent and most of their time is spent waiting on the engine, so
    they start, are prepared and are removed one thread each.
    """
    from concurrent.futures import ThreadPoolExecutor

    if len(jobs) == 1:
        return [jobs[0]()]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [f.result() for f in futures]


class Lifecycle:
    """The sandboxes of one session: started with its labels, removed by them (see the module's text).

    `forget(machine)` runs after each removal (what the host keeps about a sandbox: its
    ready file, its answers). `quiet`: a removal that fails is ignored (the label sweep
    looks again) instead of raised. `patient`: how hard the sweep looks for late containers
    (None: hard only when the block failed or a start never handed its sandbox back).
    """

    def __init__(self, backend: Backend, selector: Mapping[str, str], *, keep: Keep = "never",
                 forget: Callable[[Machine], Any] | None = None, quiet: bool = False,
                 patient: bool | None = None, pause: float = 0.3) -> None:
        if not selector:
            raise ValueError("a lifecycle needs labels to find its sandboxes by")
        self.backend = backend
        self.selector = dict(selector)
        self.keep: Keep = keep
        self.forget = forget
        self.quiet = quiet
        self.patient = patient
        self.pause = pause
        self.started: list[Machine] = []  # every sandbox ever started here, in order
        self.removed: set[str] = set()  # ids removed (successfully) so far
        self._attempts = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ start

    def start(self, spec: MachineSpec, labels: Mapping[str, str]) -> Machine:
        """Start one sandbox; its labels must include the selector (else it could leak)."""
        wrong = sorted(k for k, v in self.selector.items() if labels.get(k) != v)
        if wrong:
            raise ValueError(f"a sandbox of this lifecycle must carry its labels: {', '.join(wrong)}")
        with self._lock:
            self._attempts += 1
        machine = self.backend.start(spec, labels)
        with self._lock:
            self.started.append(machine)
        return machine

    @property
    def live(self) -> list[Machine]:
        """The sandboxes started here and not removed since."""
        return [m for m in self.started if m.id not in self.removed]

    # ------------------------------------------------------------------ remove

    def remove(self, machines: Iterable[Machine]) -> None:
        """Remove these sandboxes (at the same time: each removal waits on the engine), then forget them."""
        jobs = [lambda m=m: self._remove_one(m) for m in machines]
        if jobs:
            parallel(jobs)

    def _remove_one(self, machine: Machine) -> None:
        try:
            self.backend.remove(machine)
        except LabError:
            if not self.quiet:
                raise
            return  # found again by its labels, if it is still there
        with self._lock:
            self.removed.add(machine.id)
        if self.forget is not None:
            self.forget(machine)

    def cleanup(self, *, failed: bool = True) -> int:
        """Remove every sandbox of this lifecycle: those it started, then whatever carries its labels.

        An interruption can land while the engine is still creating a container nobody got a
        handle for, so the sweep looks again until nothing with the labels turns up. Returns
        how many the sweep found beyond the known ones.
        """
        self.remove(self.live)
        patient = self.patient if self.patient is not None else failed or self._attempts > len(self.started)
        try:
            return self.backend.remove_labelled(self.selector, patient=patient, pause=self.pause, each=self.remove)
        except LabError:
            if not self.quiet:  # quiet: the engine cannot list them; what was started is removed above
                raise
            return 0

    # ------------------------------------------------------------------ the with block

    def __enter__(self) -> Lifecycle:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.keep == "always" or (self.keep == "on_success" and kind is None):
            return
        self.cleanup(failed=kind is not None)


def prepare_session(catalog: Catalog, session: LabSession, parts: Iterable[Part]) -> None:
    """Prepare each part in the sandbox where it runs: the sandboxes at the same time, a sandbox's parts in order."""
    from labcoat.runner import steps

    groups: dict[str, list[Part]] = {}
    for part in parts:
        groups.setdefault(session.for_part(part.id).machine.id, []).append(part)

    def prepare(group: list[Part]) -> None:
        for part in group:
            steps.prepare_part(catalog, session.for_part(part.id), part)

    if groups:
        parallel([lambda g=g: prepare(g) for g in groups.values()])

