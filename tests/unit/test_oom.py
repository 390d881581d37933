"""labcoat.oom: oom_badness arithmetic checked against measured kernel decisions.

Ground truth: OOM kills measured with two hogs in a 128m/128m container on a 6171021-page host
(variants V1-V3 below) and a
real memcg OOM captured on the development host (tests/fixtures/proc/v1-oom-two-tails.*).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from labcoat import oom
from labcoat.cgroup import parse_snapshot
from labcoat.oom import (
    ProcInfo,
    badness,
    host_totalpages,
    kubelet_oom_score_adj,
    memcg_totalpages,
    nearest_allowed_adj,
    parse_oom_kills,
    parse_oom_tasks,
    parse_proc_status,
    parse_procs,
    predict_victim,
    proc_oom_score,
)

PROC = Path(__file__).resolve().parent.parent / "fixtures" / "proc"
MIB = 1024 * 1024
KIB = 1024

# The measuring host: MemTotal 24684084 kB, no swap.
A4_HOST_PAGES = 6171021
# The host the tests/fixtures/proc captures come from: MemTotal 24683656 kB, no swap.
FIXTURE_HOST_PAGES = 24683656 // 4


def p(pid: int, rss: int, adj: int, pt_pages: int = 0, comm: str = "hog", swap: int = 0) -> ProcInfo:
    """A ProcInfo in pages."""
    return ProcInfo(pid=pid, comm=comm, rss_pages=rss, swap_pages=swap, pgtables_bytes=pt_pages * 4096,
                    oom_score_adj=adj, oom_score=None)


# --------------------------------------------------------------------------------------------
# Measured: two hogs in a 128m/128m container (variants V1-V3)


class TestMeasuredA4:
    """V3: A adj 0 at 96 MiB vs B adj 500 at 20 MiB in a 128m/128m cgroup; the kernel killed A."""

    TOTAL = memcg_totalpages(128 * MIB, 128 * MIB, 0, 1)

    def test_memcg_totalpages(self) -> None:
        assert self.TOTAL == 32768
        assert self.TOTAL // 1000 == 32  # each oom_score_adj unit is worth 32 pages here

    def test_badness_v3(self) -> None:
        assert badness(24771, 0, 58 * 4096, 0, self.TOTAL) == 24771 + 58 == 24829
        assert badness(5301, 0, 20 * 4096, 500, self.TOTAL) == 5301 + 20 + 500 * 32 == 21321

    def test_badness_v3_from_the_table_rss(self) -> None:
        # The A4 table gives A's RSS as 99108 kB = 24777 pages (the text uses 24771); both win.
        assert badness(99108 * KIB // 4096, 0, 232 * KIB, 0, self.TOTAL) == 24835
        assert badness(21204 * KIB // 4096, 0, 80 * KIB, 500, self.TOTAL) == 21321

    def test_predict_v3_kills_a(self) -> None:
        a, b = p(100, 24771, 0, 58, "hogA"), p(101, 5301, 500, 20, "hogB")
        prediction = predict_victim([a, b], self.TOTAL)
        assert prediction.victim == a
        assert prediction.points == 24829
        assert [(s.proc.comm, s.points) for s in prediction.ranked] == [("hogA", 24829), ("hogB", 21321)]
        assert prediction.margin == 24829 - 21321
        assert not prediction.ambiguous

    def test_oom_score_v3_points_the_other_way(self) -> None:
        assert proc_oom_score(24771, 0, 58 * 4096, 0, A4_HOST_PAGES) == 669
        assert proc_oom_score(5301, 0, 20 * 4096, 500, A4_HOST_PAGES) == 1000
        assert proc_oom_score(99108 * KIB // 4096, 0, 232 * KIB, 0, A4_HOST_PAGES) == 669
        # ...so comparing oom_score (1000 > 669) would have predicted B: wrong (the kernel killed A).
        by_oom_score = predict_victim([p(100, 24771, 0, 58), p(101, 5301, 500, 20)], A4_HOST_PAGES)
        assert by_oom_score.victim is not None and by_oom_score.victim.pid == 101

    def test_oom_score_v1_adj_1000(self) -> None:
        assert proc_oom_score(33536 * KIB // 4096, 0, 0, 1000, A4_HOST_PAGES) == 1334

    def test_oom_score_v2_adj_500(self) -> None:
        assert proc_oom_score(33536 * KIB // 4096, 0, 0, 500, A4_HOST_PAGES) == 1000

    def test_host_totalpages(self) -> None:
        meminfo = "MemTotal:       24684084 kB\nMemFree: 1 kB\nSwapTotal:       0 kB\n"
        assert host_totalpages(meminfo) == A4_HOST_PAGES
        assert host_totalpages("MemTotal: 1000 kB\nSwapTotal: 3000 kB\n") == 1000
        with pytest.raises(ValueError):
            host_totalpages("SwapTotal: 0 kB\n")


# --------------------------------------------------------------------------------------------
# badness / proc_oom_score arithmetic


class TestArithmetic:
    def test_adj_min_is_never_killed(self) -> None:
        assert badness(10**6, 0, 0, -1000, 32768) is None
        assert proc_oom_score(10**6, 0, 0, -1000, A4_HOST_PAGES) == 0

    def test_division_happens_before_the_multiplication(self) -> None:
        # 1999 pages: 1999 // 1000 = 1 page per unit, not 1.999
        assert badness(0, 0, 0, 1000, 1999) == 1000
        assert badness(0, 0, 0, 1000, 999) == 0  # below 1000 pages adj has no effect at all

    def test_swap_and_pagetables_count(self) -> None:
        assert badness(100, 50, 3 * 4096 + 4095, 0, 32768) == 153  # partial page table page dropped

    def test_negative_adj_and_c_division(self) -> None:
        assert badness(1000, 0, 0, -500, 32768) == 1000 - 16000
        # badness = 1000 - 500*6171 = -3084500; C truncates -3084500*1000/6171021 = -499.8 to
        # -499 (Python's floor would give -500 and an oom_score of 333)
        assert badness(1000, 0, 0, -500, A4_HOST_PAGES) == -3084500
        assert proc_oom_score(1000, 0, 0, -500, A4_HOST_PAGES) == (1000 - 499) * 2 // 3 == 334

    def test_page_size(self) -> None:
        assert badness(10, 0, 65536, 0, 32768, page_size=65536) == 11


class TestMemcgTotalpages:
    def test_v1_swap_is_memsw_minus_memory_capped_by_host_swap(self) -> None:
        assert memcg_totalpages(64 * MIB, 128 * MIB, 256 * MIB, 1) == 16384 + 16384
        assert memcg_totalpages(64 * MIB, 128 * MIB, 16 * MIB, 1) == 16384 + 4096
        assert memcg_totalpages(64 * MIB, 128 * MIB, 0, 1) == 16384  # no host swap: memsw adds nothing
        assert memcg_totalpages(64 * MIB, None, 256 * MIB, 1) == 16384 + 65536  # --memory-swap=-1

    def test_v2_swap_max(self) -> None:
        assert memcg_totalpages(64 * MIB, 0, 1 << 30, 2) == 16384  # the v2 fixtures: swap.max=0
        assert memcg_totalpages(64 * MIB, 64 * MIB, 1 << 30, 2) == 32768  # swap.max = memory-swap - memory
        assert memcg_totalpages(64 * MIB, None, 1 << 30, 2) == 16384 + 262144

    def test_swappiness_zero_adds_no_swap(self) -> None:
        assert memcg_totalpages(64 * MIB, None, 1 << 30, 2, swappiness=0) == 16384

    def test_limits_round_down_to_pages(self) -> None:
        assert memcg_totalpages(64 * MIB + 100, 64 * MIB + 100, 0, 1) == 16384

    def test_from_snapshots(self) -> None:
        fixtures = PROC.parent / "cgroup"
        v1 = parse_snapshot((fixtures / "v1-after-cache-fill.txt").read_text())
        v2 = parse_snapshot((fixtures / "v2-after-oom-kill.txt").read_text())
        assert oom.snapshot_totalpages(v1, 0) == 16384  # 64m/64m
        assert oom.snapshot_totalpages(v2, 1 << 30) == 16384  # swap.max 0
        v1_swap = parse_snapshot("=== memory.limit_in_bytes\n67108864\n"
                                 "=== memory.memsw.limit_in_bytes\n134217728\n")
        assert v1_swap.swap_limit == 64 * MIB
        assert oom.snapshot_totalpages(v1_swap, 256 * MIB) == 32768
        # the pitfall this helper avoids: swap_limit is memsw - mem on v1, not memsw
        assert memcg_totalpages(v1_swap.limit, v1_swap.swap_limit, 256 * MIB, 1) == 16384

    def test_no_limit_or_bad_version(self) -> None:
        with pytest.raises(ValueError, match="no memory limit"):
            memcg_totalpages(None, None, 0, 2)
        with pytest.raises(ValueError):
            memcg_totalpages(1, 1, 0, 3)


# --------------------------------------------------------------------------------------------
# a real memcg OOM on the development host


class TestRealOom:
    """64m/64m container: A tail 40 MiB adj 0, B tail 4 MiB adj 500, then C `tail /dev/zero`."""

    TOTAL = memcg_totalpages(64 * MIB, 64 * MIB, 0, 1)
    DMESG = (PROC / "v1-oom-two-tails.dmesg").read_text()
    PROCS = (PROC / "v1-oom-two-tails.procs").read_text()

    def test_parse_procs(self) -> None:
        procs = parse_procs(self.PROCS)
        assert [x.pid for x in procs] == [1, 6, 13, 14, 16, 22, 23]  # sorted, not glob order
        a = procs[3]
        assert (a.comm, a.rss_pages, a.swap_pages, a.pgtables_bytes, a.oom_score_adj, a.oom_score) == (
            "tail", (41240 + 1308) // 4, 0, 120 * 1024, 0, 667)
        b = procs[6]
        assert (b.comm, b.oom_score_adj, b.oom_score) == ("tail", 500, 1000)

    def test_oom_score_recomputed_exactly(self) -> None:
        for info in parse_procs(self.PROCS):
            assert info.rss_pages is not None and info.oom_score_adj is not None
            assert proc_oom_score(info.rss_pages, info.swap_pages or 0, info.pgtables_bytes or 0,
                                  info.oom_score_adj, FIXTURE_HOST_PAGES) == info.oom_score, info

    def test_prediction_from_proc_matches_the_kill(self) -> None:
        prediction = predict_victim(parse_procs(self.PROCS), self.TOTAL)
        assert prediction.victim is not None
        assert (prediction.victim.pid, prediction.victim.comm, prediction.points) == (14, "tail", 10667)
        assert prediction.ranked[1].proc.pid == 23 and prediction.ranked[1].points == 1384 + 15 + 500 * 16
        # while the highest oom_score belongs to B:
        assert max(parse_procs(self.PROCS), key=lambda x: x.oom_score or 0).pid == 23

    def test_kernel_report(self) -> None:
        tasks = parse_oom_tasks(self.DMESG)
        assert [t.pid for t in tasks] == [12378, 12424, 12431, 12432, 12452, 12458, 12459, 12580, 12586]
        assert tasks[3] == ProcInfo(12432, "tail", 10631, 0, 122880, 0, None)
        assert parse_oom_kills(self.DMESG) == [oom.OomKill(12432, "tail", 0)]
        prediction = predict_victim(tasks, self.TOTAL)
        assert prediction.victim is not None and prediction.victim.pid == 12432
        assert prediction.points == 10631 + 30 == 10661
        assert [s.points for s in prediction.ranked[:3]] == [10661, 1343 + 15 + 8000, 372 + 11 + 8000]
        assert prediction.margin == 1303

    def test_old_kernel_report_format(self) -> None:
        text = ("Tasks state (memory values in pages):\n"
                "[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name\n"
                "[  22504]     0 22504    16866    16571   172032        0             0 tail\n")
        assert parse_oom_tasks(text) == [ProcInfo(22504, "tail", 16571, 0, 172032, 0, None)]

    def test_status_file(self) -> None:
        info = parse_proc_status((PROC / "docker-sleep-pid1.status").read_text())
        assert (info.pid, info.comm, info.rss_pages, info.swap_pages, info.pgtables_bytes) == (
            1, "sleep", (92 + 1340) // 4, 0, 48 * 1024)
        assert info.state == "S (sleeping)" and not info.kthread
        assert info.oom_score_adj is None  # not part of status
        assert proc_oom_score(358, 0, 48 * 1024, 0, FIXTURE_HOST_PAGES) == 666  # read 666 in the container


# --------------------------------------------------------------------------------------------
# selection rules


class TestSelection:
    def test_equal_points_the_later_task_wins(self) -> None:
        first, second = p(10, 5000, 0), p(11, 5000, 0)
        prediction = predict_victim([first, second], 32768)
        assert prediction.victim == second  # `points < chosen_points` is false on equality
        assert prediction.ties == (first, second) and prediction.ambiguous
        assert prediction.ranked[0].proc == second and prediction.margin == 0
        assert predict_victim([second, first], 32768).victim == first  # order decides

    def test_skips(self) -> None:
        protected = p(2, 10**6, -1000, comm="protected")
        kthread = ProcInfo(3, "kworker/0:1", None, None, None, 0, 0, kthread=True)
        zombie = ProcInfo(4, "defunct", None, None, None, 0, 0, state="Z (zombie)")
        vanished = ProcInfo(5, "gone", 100, 0, 0, None, None)
        init = p(1, 2000, 0, comm="init")
        small = p(6, 10, 0, comm="small")
        prediction = predict_victim([init, protected, kthread, zombie, vanished, small], 32768)
        assert prediction.victim == init  # a container's PID 1 is killable (only the global init is not)
        assert [s.proc.pid for s in prediction.skipped] == [2, 3, 4, 5]
        assert "-1000" in prediction.skipped[0].reason
        host = predict_victim([init, small], 32768, global_init_pid=1)
        assert host.victim == small and "global init" in host.skipped[0].reason

    def test_nobody_to_kill(self) -> None:
        prediction = predict_victim([p(1, 100, -1000)], 32768)
        assert prediction.victim is None and prediction.points is None
        assert prediction.ranked == () and prediction.margin is None and not prediction.ambiguous

    def test_negative_points_still_compete(self) -> None:
        a, b = p(1, 100, -900), p(2, 50, -900)
        assert predict_victim([a, b], 32768).victim == a


class TestProcsCommand:
    def test_parse_handles_vanishing_processes(self) -> None:
        text = ("=== pid 7\nName:\tsh\nPid:\t7\nVmRSS:\t 400 kB\nVmPTE:\t 44 kB\nVmSwap:\t 0 kB\n"
                "oom_score_adj:\t\noom_score:\t\n"
                "=== pid 9\n"
                "=== pid 12\nName:\tkthreadd\nPid:\t12\nKthread:\t1\noom_score_adj:\t0\noom_score:\t0\n")
        procs = parse_procs(text)
        assert [x.pid for x in procs] == [7, 12]
        assert procs[0].rss_pages == 100 and procs[0].oom_score_adj is None and procs[0].oom_score is None
        assert procs[1].kthread and procs[1].rss_pages is None
        prediction = predict_victim(procs, 32768)
        assert prediction.victim is None and len(prediction.skipped) == 2

    def test_live_on_this_host(self) -> None:
        # Under a wrapper shell, as a backend's `timeout` wraps it: the script skips itself and
        # that parent, not the grandparent (this test process).
        wrapped = ["sh", "-c", '"$@"; true', "wrapper", *oom.procs_command()]
        result = subprocess.run(wrapped, capture_output=True, text=True, timeout=60, check=True)
        procs = {x.pid: x for x in parse_procs(result.stdout)}
        me = procs[os.getpid()]
        assert me.rss_pages is not None and me.rss_pages > 1000  # a Python interpreter
        assert me.pgtables_bytes is not None and me.pgtables_bytes > 0
        assert me.oom_score_adj is not None and me.oom_score is not None
        total = host_totalpages(Path("/proc/meminfo").read_text())
        computed = proc_oom_score(me.rss_pages, me.swap_pages or 0, me.pgtables_bytes,
                                  me.oom_score_adj, total)
        assert abs(computed - me.oom_score) <= 1  # RSS may move between the two reads
        # (a process that exited between the script's reads has no RSS either: on a busy host it happens)
        assert all(x.kthread or not Path(f"/proc/{x.pid}").exists() for x in procs.values()
                   if x.rss_pages is None and x.state and not x.state.startswith("Z"))


# --------------------------------------------------------------------------------------------
# Kubernetes QoS (pkg/kubelet/qos/policy.go) and this host's limits (no CAP_SYS_RESOURCE: no adj below 0)


class TestKubelet:
    def test_classes(self) -> None:
        assert kubelet_oom_score_adj("Guaranteed") == -997
        assert kubelet_oom_score_adj("BestEffort") == 1000
        assert kubelet_oom_score_adj("burstable", 64 * MIB, 640 * MIB) == 900  # 10 % of the node
        assert kubelet_oom_score_adj("Burstable", node_critical=True) == -997

    def test_burstable_clamps(self) -> None:
        assert kubelet_oom_score_adj("Burstable", 1, 32 * 2**30) == 999  # 1000 would tie BestEffort
        assert kubelet_oom_score_adj("Burstable", 997, 1000) == 3
        assert kubelet_oom_score_adj("Burstable", 998, 1000) == 3  # 2 < 3: floor
        assert kubelet_oom_score_adj("Burstable", 2000, 1000) == 3  # request above capacity
        assert kubelet_oom_score_adj("Burstable", 1999, 10000) == 1000 - 199 == 801  # int division

    def test_errors(self) -> None:
        with pytest.raises(ValueError):
            kubelet_oom_score_adj("Platinum")
        with pytest.raises(ValueError):
            kubelet_oom_score_adj("Burstable", 1, 0)

    def test_nearest_allowed(self) -> None:
        value, note = nearest_allowed_adj(-997, can_lower=False)
        assert value == 0 and note is not None and "CAP_SYS_RESOURCE" in note
        assert nearest_allowed_adj(-997, can_lower=True) == (-997, None)
        assert nearest_allowed_adj(900, can_lower=False) == (900, None)
        assert nearest_allowed_adj(0, can_lower=False) == (0, None)
        assert nearest_allowed_adj(1500, can_lower=True).value == 1000
        assert nearest_allowed_adj(-2000, can_lower=True).value == -1000
        assert nearest_allowed_adj(-2000, can_lower=False).value == 0
