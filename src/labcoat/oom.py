"""The kernel's OOM-victim arithmetic, so a lab can predict (and then check) who dies.

Sources: mm/oom_kill.c (oom_badness, oom_evaluate_task, select_bad_process,
oom_unkillable_task, constrained_alloc), mm/memcontrol.c (mem_cgroup_get_max,
mem_cgroup_scan_tasks), fs/proc/base.c (proc_oom_score, __set_oom_adj),
kubernetes pkg/kubelet/qos/policy.go (GetContainerOOMScoreAdjust).

The central fact (mm/oom_kill.c constrained_alloc sets totalpages = mem_cgroup_get_max):
a memcg OOM scales oom_score_adj by the *cgroup's* limit, while /proc/PID/oom_score scales it
by *host* RAM + swap. Comparing oom_score values does not predict a memcg victim; recompute
badness with memcg_totalpages().
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from labcoat.cgroup import MemorySnapshot

OOM_SCORE_ADJ_MIN = -1000  # include/uapi/linux/oom.h: never chosen
OOM_SCORE_ADJ_MAX = 1000
PAGE_SIZE = 4096


def _c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero), unlike Python's floor division."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def badness(rss_pages: int, swap_pages: int, pgtables_bytes: int, oom_score_adj: int,
            totalpages: int, page_size: int = PAGE_SIZE) -> int | None:
    """oom_badness() of mm/oom_kill.c; None where the kernel returns LONG_MIN (adj -1000).

    ``points = rss + swapents + pgtables_bytes / PAGE_SIZE; adj *= totalpages / 1000;
    points += adj`` with the division done first, in integers. ``rss`` is get_mm_rss():
    anon + file + shmem pages. The result can be negative for a negative adj.

    Measured: a 128m cgroup (totalpages 32768, so adj counts 32 pages per unit), hogs A and B; A was killed:

    >>> badness(24771, 0, 58 * 4096, 0, 32768), badness(5301, 0, 20 * 4096, 500, 32768)
    (24829, 21321)
    >>> badness(100, 0, 0, -1000, 32768) is None
    True
    """
    if oom_score_adj == OOM_SCORE_ADJ_MIN:
        return None
    points = rss_pages + swap_pages + pgtables_bytes // page_size
    # `adj *= totalpages / 1000`: unsigned long division first, so 32768 pages -> 32 per unit.
    return points + oom_score_adj * (totalpages // 1000)


def proc_oom_score(rss_pages: int, swap_pages: int, pgtables_bytes: int, oom_score_adj: int,
                   totalpages: int, page_size: int = PAGE_SIZE) -> int:
    """What /proc/PID/oom_score prints (fs/proc/base.c proc_oom_score), 0..2000.

    ``totalpages`` here is the *host's* totalram_pages() + total_swap_pages (host_totalpages);
    ``points = (1000 + badness * 1000 / totalpages) * 2 / 3`` in C (truncating) arithmetic,
    and 0 for adj -1000.

    Measured on a 6171021-page host, the same hogs: A (adj 0) 669, B (adj 500) 1000.

    >>> proc_oom_score(24771, 0, 58 * 4096, 0, 6171021), proc_oom_score(5301, 0, 20 * 4096, 500, 6171021)
    (669, 1000)
    """
    points = badness(rss_pages, swap_pages, pgtables_bytes, oom_score_adj, totalpages, page_size)
    if points is None:
        return 0
    return _c_div((1000 + _c_div(points * 1000, totalpages)) * 2, 3)


def host_totalpages(meminfo: str, page_size: int = PAGE_SIZE) -> int:
    """totalram_pages() + total_swap_pages from /proc/meminfo text (MemTotal + SwapTotal).

    >>> host_totalpages("MemTotal:       24684084 kB\\nSwapTotal:             0 kB\\n")
    6171021
    """
    kb = {}
    for line in meminfo.splitlines():
        match = re.match(r"^(MemTotal|SwapTotal):\s+(\d+)\s*kB", line)
        if match:
            kb[match.group(1)] = int(match.group(2))
    if "MemTotal" not in kb:
        raise ValueError("no MemTotal line in meminfo text")
    return (kb["MemTotal"] + kb.get("SwapTotal", 0)) * 1024 // page_size


def memcg_totalpages(limit_bytes: int | None, memsw_limit_bytes_or_swap_max: int | None,
                     total_swap_bytes: int, version: int, page_size: int = PAGE_SIZE,
                     swappiness: int = 60) -> int:
    """oc->totalpages of a memcg OOM: mem_cgroup_get_max() in mm/memcontrol.c.

    The memory limit in pages plus the swap the cgroup may use: v1 ``min(memsw - mem,
    total_swap)``, v2 ``min(swap.max, total_swap)``; no swap term when swappiness is 0.
    Pass None for an unlimited memsw / ``swap.max = max``. A cgroup without a memory limit
    never OOMs on its own account (the OOM would be an ancestor's or global), so that raises.

    >>> memcg_totalpages(128 * 2**20, 128 * 2**20, 0, 1)   # 128m/128m: 32768 -> 32 pages per adj unit
    32768
    >>> memcg_totalpages(64 * 2**20, 128 * 2**20, 256 * 2**20, 1)   # 64m/128m with 256 MiB swap
    32768
    >>> memcg_totalpages(64 * 2**20, None, 2**30, 2)   # v2 swap.max=max: all of the host's swap
    278528
    """
    if limit_bytes is None:
        raise ValueError("no memory limit: a memcg OOM happens in the ancestor that has one; "
                         "use that cgroup's limit, or host_totalpages() for a global OOM")
    if version not in (1, 2):
        raise ValueError(f"cgroup version must be 1 or 2, not {version!r}")
    max_pages = limit_bytes // page_size  # page_counter_memparse rounds a limit down to pages
    if swappiness == 0:
        return max_pages
    total_swap_pages = total_swap_bytes // page_size
    if memsw_limit_bytes_or_swap_max is None:
        return max_pages + total_swap_pages
    if version == 1:
        swap_pages = memsw_limit_bytes_or_swap_max // page_size - max_pages
    else:
        swap_pages = memsw_limit_bytes_or_swap_max // page_size
    return max_pages + min(max(swap_pages, 0), total_swap_pages)


def snapshot_totalpages(snapshot: MemorySnapshot, total_swap_bytes: int, page_size: int = PAGE_SIZE,
                        swappiness: int = 60) -> int:
    """memcg_totalpages for a labcoat.cgroup.MemorySnapshot.

    Use this rather than passing ``snapshot.swap_limit`` to memcg_totalpages: on v1 that
    field is already ``memsw - memory``, while memcg_totalpages wants the memsw limit itself.
    """
    if snapshot.version == 1:
        memsw = None if snapshot.limit is None or snapshot.swap_limit is None else (
            snapshot.limit + snapshot.swap_limit)
    else:
        memsw = snapshot.swap_limit
    return memcg_totalpages(snapshot.limit, memsw, total_swap_bytes, snapshot.version, page_size, swappiness)


# ---------------------------------------------------------------------------------------------
# Processes


@dataclass(frozen=True)
class ProcInfo:
    """The per-process inputs of oom_badness, as /proc shows them (pages and bytes)."""

    pid: int
    comm: str
    rss_pages: int | None  # get_mm_rss: RssAnon + RssFile + RssShmem; None without an mm
    swap_pages: int | None  # MM_SWAPENTS: VmSwap
    pgtables_bytes: int | None  # mm_pgtables_bytes: VmPTE kB * 1024
    oom_score_adj: int | None
    oom_score: int | None  # as the kernel printed it (host-scaled; see proc_oom_score)
    state: str | None = None
    kthread: bool = False


_STATUS_LINE = re.compile(r"^([A-Za-z_]+):\s*(.*)$")


def _kb_pages(value: str | None, page_size: int) -> int | None:
    """``1432 kB`` as pages."""
    if value is None:
        return None
    return int(value.split()[0]) * 1024 // page_size


def _int_or_none(value: str | None) -> int | None:
    """An integer field, None when missing or empty (the process vanished mid-read)."""
    if value is None or not value.strip():
        return None
    try:
        return int(value.split()[0])
    except ValueError:
        return None


def parse_proc_status(text: str, page_size: int = PAGE_SIZE) -> ProcInfo:
    """A /proc/PID/status text (plus optional ``oom_score_adj:``/``oom_score:`` lines).

    The Rss*/VmSwap/VmPTE counters are what fs/proc/task_mmu.c task_mem prints from the
    same mm counters oom_badness reads. A kernel thread or zombie has no Vm* lines (no mm):
    rss_pages is then None and the kernel would skip it (find_lock_task_mm fails).
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        match = _STATUS_LINE.match(line)
        if match:
            fields.setdefault(match.group(1), match.group(2).strip())
    parts = [_kb_pages(fields.get(k), page_size) for k in ("RssAnon", "RssFile", "RssShmem")]
    if all(p is not None for p in parts):
        rss: int | None = sum(parts)  # type: ignore[arg-type]
    else:
        rss = _kb_pages(fields.get("VmRSS"), page_size)
    pte_kb = _int_or_none(fields.get("VmPTE"))
    pid = _int_or_none(fields.get("Pid"))
    return ProcInfo(
        pid=pid if pid is not None else -1,
        comm=fields.get("Name", ""),
        rss_pages=rss,
        swap_pages=_kb_pages(fields.get("VmSwap"), page_size),
        pgtables_bytes=None if pte_kb is None else pte_kb * 1024,
        oom_score_adj=_int_or_none(fields.get("oom_score_adj")),
        oom_score=_int_or_none(fields.get("oom_score")),
        state=fields.get("State"),
        kthread=fields.get("Kthread") == "1",
    )


# One exec, builtins only (dash, busybox ash): no process per file, and a process that
# exits mid-read just yields a short block or none. The shell skips itself ($$) and its
# parent ($PPID: the `timeout` wrapper a backend may start it under), which are gone a moment
# later and would otherwise look like processes that disappeared.
_PROCS_SCRIPT = r"""for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" = "$$" ] && continue
  [ "$p" = "$PPID" ] && continue
  s=""
  { while IFS= read -r l; do
      case "$l" in
        Name:*|Pid:*|State:*|Kthread:*|VmRSS:*|RssAnon:*|RssFile:*|RssShmem:*|VmSwap:*|VmPTE:*)
          s="$s$l
" ;;
      esac
    done < "$d/status"; } 2>/dev/null || continue
  [ -n "$s" ] || continue
  a=""; o=""
  { read -r a < "$d/oom_score_adj"; } 2>/dev/null
  { read -r o < "$d/oom_score"; } 2>/dev/null
  printf '=== pid %s\n%soom_score_adj:\t%s\noom_score:\t%s\n' "$p" "$s" "$a" "$o"
done
exit 0
"""


def procs_command() -> list[str]:
    """argv printing, for every process, its status fields, oom_score_adj and oom_score."""
    return ["sh", "-c", _PROCS_SCRIPT, "labcoat-procs"]


def parse_procs(text: str, page_size: int = PAGE_SIZE) -> list[ProcInfo]:
    """Parse procs_command output, sorted by ascending PID (see predict_victim on order).

    The shell glob lists /proc/1, /proc/13, /proc/6 in string order, hence the sort.
    """
    procs: list[ProcInfo] = []
    blocks = re.split(r"^=== pid (\d+)\s*$", text, flags=re.MULTILINE)
    for pid_text, body in zip(blocks[1::2], blocks[2::2], strict=True):
        info = parse_proc_status(body, page_size)
        if "Name:" not in body:
            continue  # vanished before its status could be read
        if info.pid < 0:
            info = replace(info, pid=int(pid_text))
        procs.append(info)
    return sorted(procs, key=lambda p: p.pid)


# mm/oom_kill.c dump_task: "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem
# pgtables_bytes swapents oom_score_adj name" (the rss_* columns are new in 6.x; older kernels
# print only rss). Values are in pages except pgtables_bytes.
_TASK_ROW = re.compile(r"\[\s*(\d+)\]((?:\s+-?\d+){7,10})\s+(\S.*?)\s*$")
_KILLED = re.compile(r"Killed process (\d+) \((.*?)\).*?oom_score_adj:(-?\d+)")


def parse_oom_tasks(dmesg: str) -> list[ProcInfo]:
    """The "Tasks state" table of a kernel OOM report, as ProcInfo in the kernel's scan order.

    dump_tasks walks the same iterator as the victim selection (mem_cgroup_scan_tasks for a
    memcg OOM), so the row order is the scan order and feeding these rows to predict_victim
    replays the kernel's choice. Rows come from the first report in ``dmesg``.
    """
    procs: list[ProcInfo] = []
    in_table = False
    for line in dmesg.splitlines():
        if "Tasks state (memory values in pages)" in line:
            if procs:
                break  # only the first report
            in_table = True
            continue
        if not in_table or "[  pid  ]" in line:
            continue
        match = _TASK_ROW.search(line)
        if not match:
            if procs:
                break  # the table ended
            continue
        numbers = [int(n) for n in match.group(2).split()]
        if len(numbers) == 10:  # uid tgid total_vm rss rss_anon rss_file rss_shmem pgtables swapents adj
            rss, pgtables, swapents, adj = numbers[3], numbers[7], numbers[8], numbers[9]
        elif len(numbers) == 7:  # uid tgid total_vm rss pgtables swapents adj
            rss, pgtables, swapents, adj = numbers[3], numbers[4], numbers[5], numbers[6]
        else:
            continue
        procs.append(ProcInfo(pid=int(match.group(1)), comm=match.group(3), rss_pages=rss,
                              swap_pages=swapents, pgtables_bytes=pgtables, oom_score_adj=adj,
                              oom_score=None))
    return procs


class OomKill(NamedTuple):
    """One ``Killed process PID (comm) … oom_score_adj:N`` line of a kernel OOM report."""

    pid: int
    comm: str
    oom_score_adj: int


def parse_oom_kills(dmesg: str) -> list[OomKill]:
    """Every victim named in ``dmesg`` text, oldest first (host-only: dmesg_restrict)."""
    return [OomKill(int(m.group(1)), m.group(2), int(m.group(3))) for m in _KILLED.finditer(dmesg)]


# ---------------------------------------------------------------------------------------------
# Victim selection


@dataclass(frozen=True)
class Scored:
    """A candidate and its oom_badness points."""

    proc: ProcInfo
    points: int


@dataclass(frozen=True)
class Skipped:
    """A process the kernel would not consider, and why."""

    proc: ProcInfo
    reason: str


@dataclass(frozen=True)
class Prediction:
    """The predicted victim, every candidate ranked, and any tie for the top."""

    victim: ProcInfo | None
    points: int | None
    ranked: tuple[Scored, ...]  # highest first; equal points: the one the kernel prefers first
    ties: tuple[ProcInfo, ...]  # all procs sharing the top points, in scan order
    skipped: tuple[Skipped, ...]
    totalpages: int

    @property
    def ambiguous(self) -> bool:
        """True when several processes share the top points: the victim depends on scan order."""
        return len(self.ties) > 1

    @property
    def margin(self) -> int | None:
        """Victim points minus the runner-up's; None with fewer than two candidates.

        Keep lab setups well clear of 0: /proc/PID/status sums the per-CPU rss counters
        exactly (fs/proc/task_mmu.c task_mem, get_mm_counter_sum) but oom_badness reads
        them approximately (get_mm_rss -> get_mm_counter, percpu_counter_read_positive),
        which can lag by up to a percpu batch (>= 32 pages) per CPU per counter.
        """
        if len(self.ranked) < 2:
            return None
        return self.ranked[0].points - self.ranked[1].points


def predict_victim(procs: Iterable[ProcInfo], totalpages: int, page_size: int = PAGE_SIZE,
                   global_init_pid: int | None = None) -> Prediction:
    """Replay select_bad_process/oom_evaluate_task over ``procs`` in the order given.

    - Highest oom_badness wins. On equal points the *later* task wins: the test is
      ``if (points == LONG_MIN || points < oc->chosen_points) goto next;`` and chosen_points
      starts at LONG_MIN, so an equal score falls through to ``select``.
    - Scan order for a memcg OOM is mem_cgroup_scan_tasks: the cgroup subtree parent first,
      and in each cgroup css_task_iter with CSS_TASK_ITER_PROCS, i.e. thread-group leaders in
      the order they joined their css_set (fork or migration), not PID order. For a container
      whose processes are forked one after another that usually equals ascending PID, which is
      what parse_procs yields; with PID wrap-around or ``docker exec`` the order can differ,
      so check ``ambiguous`` and avoid setups that tie. The "Tasks state" table of a kernel
      OOM report is printed by the same iterator, so parse_oom_tasks rows are in scan order.
    - Skipped: oom_score_adj -1000 (oom_badness -> LONG_MIN), tasks without an mm (kernel
      threads, zombies: find_lock_task_mm fails) and the *global* init. oom_unkillable_task
      tests is_global_init and PF_KTHREAD only, so a container's PID 1 is killable (measured:
      `tail` as a container's PID 1 was the victim). Pass ``global_init_pid`` when scanning the host.
    - Not modelled: a pending victim aborts the scan (tsk_is_oom_victim), oom_task_origin
      (swapoff/ksm get LONG_MAX), MMF_OOM_SKIP and vfork children (skipped by the kernel).
    """
    best: Scored | None = None
    scored: list[tuple[int, Scored]] = []
    skipped: list[Skipped] = []
    for order, proc in enumerate(procs):
        if global_init_pid is not None and proc.pid == global_init_pid:
            skipped.append(Skipped(proc, "global init (oom_unkillable_task)"))
            continue
        if proc.kthread:
            skipped.append(Skipped(proc, "kernel thread (oom_unkillable_task)"))
            continue
        if proc.rss_pages is None or proc.oom_score_adj is None:
            skipped.append(Skipped(proc, "no mm or vanished (find_lock_task_mm)"))
            continue
        points = badness(proc.rss_pages, proc.swap_pages or 0, proc.pgtables_bytes or 0,
                         proc.oom_score_adj, totalpages, page_size)
        if points is None:
            skipped.append(Skipped(proc, "oom_score_adj -1000 (OOM_SCORE_ADJ_MIN)"))
            continue
        entry = Scored(proc, points)
        scored.append((order, entry))
        if best is None or not points < best.points:  # equal replaces, as in the kernel
            best = entry
    # Highest points first; among equals the later-scanned (the kernel's pick) first.
    ranked = tuple(s for _, s in sorted(scored, key=lambda item: (-item[1].points, -item[0])))
    ties = tuple(s.proc for _, s in scored if best is not None and s.points == best.points)
    return Prediction(
        victim=best.proc if best else None,
        points=best.points if best else None,
        ranked=ranked,
        ties=ties,
        skipped=tuple(skipped),
        totalpages=totalpages,
    )


# ---------------------------------------------------------------------------------------------
# Kubernetes QoS and what this host allows

GUARANTEED_OOM_SCORE_ADJ = -997
BESTEFFORT_OOM_SCORE_ADJ = 1000
KUBELET_OOM_SCORE_ADJ = -999


def kubelet_oom_score_adj(qos: str, request_bytes: int | None = None,
                          capacity_bytes: int | None = None, node_critical: bool = False) -> int:
    """GetContainerOOMScoreAdjust in kubernetes pkg/kubelet/qos/policy.go.

    Guaranteed (and node-critical pods) -997, BestEffort 1000, Burstable
    ``1000 - 1000*request/capacity`` (Go int64 division) clamped to [3, 999]: below
    1000-997 gives 3, exactly 1000 (a tiny request) gives 999.

    >>> kubelet_oom_score_adj("Burstable", 10, 100), kubelet_oom_score_adj("Burstable", 1, 10**10)
    (900, 999)
    """
    kind = qos.strip().lower()
    if node_critical or kind == "guaranteed":
        return GUARANTEED_OOM_SCORE_ADJ
    if kind == "besteffort":
        return BESTEFFORT_OOM_SCORE_ADJ
    if kind != "burstable":
        raise ValueError(f"unknown QoS class {qos!r} (Guaranteed, Burstable or BestEffort)")
    if request_bytes is None or not capacity_bytes:
        raise ValueError("Burstable needs request_bytes and a non-zero capacity_bytes")
    adj = 1000 - _c_div(1000 * request_bytes, capacity_bytes)
    if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ:
        return 1000 + GUARANTEED_OOM_SCORE_ADJ
    if adj == 1000:
        return 999
    return adj


class AllowedAdj(NamedTuple):
    """The oom_score_adj to actually write, and a note when it differs from the request."""

    value: int
    note: str | None


def nearest_allowed_adj(value: int, can_lower: bool) -> AllowedAdj:
    """The closest oom_score_adj a process can set; without CAP_SYS_RESOURCE, not below 0.

    fs/proc/base.c __set_oom_adj: going below signal->oom_score_adj_min needs
    CAP_SYS_RESOURCE, and that minimum is 0 for everyone who never had it. On hosts whose
    bounding set lacks CAP_SYS_RESOURCE (bit 24 of CapBnd in /proc/self/status) -997/-999 are impossible.

    >>> nearest_allowed_adj(-997, can_lower=False).value, nearest_allowed_adj(500, False)
    (0, AllowedAdj(value=500, note=None))
    """
    if value < 0 and not can_lower:
        return AllowedAdj(0, f"oom_score_adj {value} needs CAP_SYS_RESOURCE (fs/proc/base.c "
                             "__set_oom_adj); this host cannot lower it below 0, so 0 is used")
    clamped = max(OOM_SCORE_ADJ_MIN, min(OOM_SCORE_ADJ_MAX, value))
    if clamped != value:
        return AllowedAdj(clamped, f"oom_score_adj {value} is outside [-1000, 1000]; using {clamped}")
    return AllowedAdj(value, None)
