"""Lab 5.3 part 3: in every seeded draw only the memcg arithmetic finds the victim.

The sandbox's services come from scenarios/lab53-part3.yaml with sizes and oom_score_adj
values drawn from the seed. For 500 seeds, with the kernel's arithmetic (labcoat.oom:
oom_badness with totalpages = the cgroup's limit; /proc/PID/oom_score with the host's RAM),
the memcg victim must be neither the largest by RSS, nor the top /proc/PID/oom_score, nor
the highest oom_score_adj, before and after the runbook's change (log-agent to 350), and
must also beat the `trigger` that lab53-part3-oom grows into the room that is left.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labcoat.content.catalog import Catalog
from labcoat.oom import PAGE_SIZE, ProcInfo, predict_victim, proc_oom_score
from labcoat.runner.steps import draw_vars, substitute

ROOT = Path(__file__).resolve().parents[2]
LIMIT_PAGES = 256 * 2**20 // PAGE_SIZE  # the part's sandbox: 256m, memory-swap equal, so totalpages = the limit
RUNBOOK_ADJ = 350
MIN_MARGIN = 1500  # pages; the kernel reads RSS through per-CPU counters that may lag by a few hundred
HOSTS_GIB = (1, 2, 4, 8, 16, 23.5, 64, 256)  # oom_score depends on the host's RAM: small and large hosts
SEEDS = range(500)


@pytest.fixture(scope="module")
def scenario():
    return Catalog.load(ROOT).scenario("lab53-part3")


def services(scenario, seed: int, overhead: int) -> list[ProcInfo]:
    """The processes the scenario's hog steps start for `seed`: RSS = MiB + `overhead` pages (the hog
    binary, its stack), one page-table page per 2 MiB; scan order = start order."""
    drawn = draw_vars(scenario, seed)
    procs, pid = [], 10
    for step in scenario.steps:
        if step.kind != "hog":
            continue
        args = step.hog
        mib = int(substitute(args.mib, drawn))
        rss = mib * 256 + overhead
        procs.append(ProcInfo(pid=pid, comm=substitute(args.name, drawn), rss_pages=rss, swap_pages=0,
                              pgtables_bytes=(rss // 512 + 3) * PAGE_SIZE,
                              oom_score_adj=int(substitute(args.oom_score_adj, drawn)), oom_score=None))
        pid += 1
    return procs


def after_runbook(procs: list[ProcInfo]) -> list[ProcInfo]:
    return [ProcInfo(**{**p.__dict__, "oom_score_adj": RUNBOOK_ADJ}) if p.comm == "log-agent" else p for p in procs]


def host_pages(gib: float) -> int:
    return int(gib * 2**30) // PAGE_SIZE


def check_draw(procs: list[ProcInfo]) -> None:
    prediction = predict_victim(procs, LIMIT_PAGES)
    victim = prediction.victim
    assert victim is not None and prediction.margin is not None and prediction.margin >= MIN_MARGIN, prediction
    others = [p for p in procs if p.pid != victim.pid]
    assert max(others, key=lambda p: p.rss_pages).rss_pages > victim.rss_pages, "the victim is the largest by RSS"
    assert max(p.oom_score_adj for p in others) > victim.oom_score_adj, "the victim has the highest adj"
    for gib in HOSTS_GIB:
        scores = {p.pid: proc_oom_score(p.rss_pages, 0, p.pgtables_bytes, p.oom_score_adj, host_pages(gib))
                  for p in procs}
        assert max(scores[p.pid] for p in others) > scores[victim.pid], f"oom_score picks the victim on {gib} GiB"
    # lab53-part3-oom grows `trigger` (adj 0) until the OOM: at most into the room the services leave.
    room = LIMIT_PAGES - sum(p.rss_pages for p in procs)
    assert prediction.points - room >= MIN_MARGIN, "the trigger could outscore the victim"


@pytest.mark.parametrize("overhead", [0, 200, 512])
def test_only_the_arithmetic_finds_the_victim_in_every_draw(scenario, overhead):
    victims = set()
    for seed in SEEDS:
        procs = services(scenario, seed, overhead)
        check_draw(procs)  # before the runbook's change
        check_draw(after_runbook(procs))  # and after it
        assert predict_victim(procs, LIMIT_PAGES).victim.comm == predict_victim(after_runbook(procs),
                                                                               LIMIT_PAGES).victim.comm
        victims.add(predict_victim(procs, LIMIT_PAGES).victim.comm)
    # The victim's name varies between learners: memorising a name does not help.
    assert len(victims) >= 4


def test_the_check_would_catch_a_bad_draw():
    """check_draw fails where the largest process is also the victim (the old part 3's flaw)."""
    procs = [ProcInfo(10, "api-server", 140 * 256, 0, 4096 * 70, 0, None),
             ProcInfo(11, "batch-job", 34 * 256, 0, 4096 * 17, 300, None),
             ProcInfo(12, "log-agent", 10 * 256, 0, 4096 * 5, 350, None)]
    with pytest.raises(AssertionError, match="largest by RSS"):
        check_draw(procs)
