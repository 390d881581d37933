"""labcoat.cgroup against real captures (tests/fixtures/cgroup, tests/fixtures/proc) and this host.

The numbers asserted here are the kernel's own, copied from the capture files; see the
READMEs next to them for what was running.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from labcoat import cgroup
from labcoat.cgroup import (
    INSIDE_V1_DIR,
    INSIDE_V2_DIR,
    V1_FILES,
    V2_FILES,
    CgroupDir,
    Pressure,
    PsiLine,
    cgroup2_dir,
    detect_version,
    memory_cgroup_dir,
    parse_keyed,
    parse_limit,
    parse_mountinfo,
    parse_pressure,
    parse_proc_cgroup,
    parse_snapshot,
    parse_value,
    reclaiming,
    snapshot_command,
    split_capture,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CG = FIXTURES / "cgroup"
PROC = FIXTURES / "proc"
DOCKER_ID = "239375b46ba3efdc0813443c1e345aa92ce1fcbd6f22f05acd88db3f36c0fb35"
MIB = 1024 * 1024


def snap(name: str, **kwargs: object) -> cgroup.MemorySnapshot:
    """Parse one capture file."""
    return parse_snapshot((CG / name).read_text(), **kwargs)  # type: ignore[arg-type]


def proc(name: str) -> str:
    """Text of a /proc sample."""
    return (PROC / name).read_text()


# --------------------------------------------------------------------------------------------
# single-file parsers


class TestParsers:
    def test_limit_unlimited_forms(self) -> None:
        assert parse_limit("67108864\n") == 64 * MIB
        assert parse_limit("max\n") is None
        assert parse_limit("9223372036854771712\n") is None  # v1 "no limit": PAGE_COUNTER_MAX * PAGE_SIZE
        assert parse_limit(str(2**62)) is None
        assert parse_limit(str(2**62 - 1)) == 2**62 - 1
        assert parse_limit("0") == 0  # memory.swap.max 0 is a limit, not "unset"
        assert parse_limit("") is None

    def test_value(self) -> None:
        assert parse_value("225280\n") == 225280
        assert parse_value("  \n") is None

    def test_keyed_skips_foreign_lines(self) -> None:
        text = "oom 1\noom_kill 1\n[   41.750187] tail invoked oom-killer: order=0\nsome avg10=0.91 total=1\n"
        assert parse_keyed(text) == {"oom": 1, "oom_kill": 1}

    def test_pressure(self) -> None:
        p = parse_pressure(
            "some avg10=1.26 avg60=0.30 avg300=0.06 total=269742\n"
            "full avg10=1.26 avg60=0.30 avg300=0.06 total=269742\n"
        )
        assert p == Pressure(PsiLine(1.26, 0.30, 0.06, 269742), PsiLine(1.26, 0.30, 0.06, 269742))

    def test_pressure_without_full_and_unreadable(self) -> None:
        p = parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n")
        assert p is not None and p.full is None and p.some.total == 7
        assert parse_pressure("") is None
        assert parse_pressure("cat: /proc/pressure/memory: No such file or directory\n") is None

    def test_header_names(self) -> None:
        capture = split_capture((CG / "v1-under-pressure.txt").read_text())
        assert set(capture.files) == set(V1_FILES) | {"memory.pressure", "/proc/pressure/memory"}
        assert capture.preamble[0].startswith("--- kernel 6.18.44-fc-v669")

    def test_empty_section_is_missing(self) -> None:
        capture = split_capture("=== memory.max\n=== memory.current\n5\n")
        assert capture.files == {"memory.current": "5\n"}


# --------------------------------------------------------------------------------------------
# v2 captures (pure v2 host, memory.max=64M, memory.swap.max=0)


class TestV2Fixtures:
    def test_after_oom_kill(self) -> None:
        s = snap("v2-after-oom-kill.txt", timestamp=12.5)
        assert s.version == 2
        assert s.timestamp == 12.5
        assert s.limit == 67108864
        assert s.swap_limit == 0
        assert s.usage == 225280
        assert s.peak == 67108864  # the peak sits at the limit
        assert s.oom_kill == 1
        assert s.oom == 1
        assert s.events is not None and s.events["max"] == 86 and s.events["oom_group_kill"] == 0
        assert s.events_local == s.events
        assert s.failcnt is None  # v1 only
        assert s.under_oom is None and s.oom_control is None
        assert s.pressure == Pressure(PsiLine(0.0, 0.0, 0.0, 3216), PsiLine(0.0, 0.0, 0.0, 3216))
        assert s.system_pressure is None  # not in this capture: not invented
        assert s.anon == 0 and s.file == 8192 and s.inactive_file == 8192
        assert s.workingset == 225280 - 8192
        assert s.preamble[0] == "tail exit=137"

    def test_kernel_log_lines_do_not_leak_into_stat(self) -> None:
        s = snap("v2-after-oom-kill.txt")
        assert s.stat is not None
        assert s.stat["pagetables"] == 192512
        assert s.stat["numa_hint_faults"] == 0
        assert s.stat["pgscan"] == 12539 and s.stat["pgsteal"] == 12313
        assert not any(key.startswith("[") for key in s.stat)

    def test_after_cache_fill(self) -> None:
        s = snap("v2-after-cache-fill.txt")
        assert s.usage == 52723712
        assert s.peak == 53469184
        assert s.file == 50442240
        assert s.inactive_file == 50442240
        assert s.active_file == 0
        assert s.workingset == 52723712 - 50442240 == 2281472  # page cache is not working set
        assert s.file_dirty == 0 and s.file_mapped == 0 and s.shmem == 0
        assert s.oom_kill == 0 and s.events == {
            "low": 0, "high": 0, "max": 0, "oom": 0, "oom_kill": 0, "oom_group_kill": 0}

    def test_under_pressure(self) -> None:
        s = snap("v2-under-pressure.txt")
        assert s.usage == 66908160
        assert s.anon == 54595584
        assert s.file == 11468800
        assert s.inactive_file == 10694656
        assert s.workingset == 66908160 - 10694656 == 56213504
        assert s.events is not None and s.events["max"] == 80255
        assert s.oom_kill == 1
        assert s.pressure is not None
        assert (s.pressure.some.avg10, s.pressure.some.avg60, s.pressure.some.avg300) == (1.26, 0.30, 0.06)
        assert s.pressure.some.total == 269742 and s.pressure.full is not None
        # The two header-less PSI lines at the end of the file are not attributed to anything.
        assert s.system_pressure is None
        assert s.stat is not None and s.stat["workingset_refault_file"] == 4627958

    def test_idle(self) -> None:
        s = snap("v2-idle.txt")
        assert (s.usage, s.peak, s.workingset, s.oom_kill) == (0, 0, 0, 0)

    def test_stat_v2_accessor(self) -> None:
        s = snap("v2-under-pressure.txt")
        assert s.stat_v2("anon") == 54595584
        assert s.stat_v2("no_such_key") is None


# --------------------------------------------------------------------------------------------
# v1 captures (hybrid host, Docker --memory=64m --memory-swap=64m, read from the host)


class TestV1Fixtures:
    def test_after_cache_fill(self) -> None:
        s = snap("v1-after-cache-fill.txt")
        assert s.version == 1
        assert s.limit == 67108864
        assert s.swap_limit == 0  # memsw 64m - memory 64m
        assert s.usage == 54861824
        assert s.peak == 56209408
        assert s.file == 52731904  # total_cache: the 48 MiB page-cache fill is charged here
        assert s.anon == 94208
        assert s.shmem == 0
        assert s.file_mapped == 1417216
        assert s.file_dirty == 0 and s.file_writeback == 0
        assert s.inactive_file == 51073024 and s.active_file == 1658880
        assert s.workingset == 54861824 - 51073024 == 3788800
        assert s.failcnt == 0
        assert s.oom_kill == 0
        assert s.oom is None  # v1 has no oom counter ...
        assert s.under_oom is False  # ... only the under_oom state
        assert s.oom_kill_disable is False
        assert s.events is None
        assert s.pressure == Pressure(PsiLine(0.0, 0.0, 0.0, 0), PsiLine(0.0, 0.0, 0.0, 0))

    def test_after_oom_kill_failcnt_stays_zero(self) -> None:
        s = snap("v1-after-oom-kill.txt")
        assert s.preamble[0] == "tail exit=137"
        assert s.oom_kill == 1
        assert s.failcnt == 0  # memsw == mem: the memsw counter fails instead (mm/memcontrol.c track_failcnt)
        assert s.peak == 67108864
        assert s.usage == 2519040
        assert s.oom_control == {"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 1}
        assert s.pressure is not None and s.pressure.some.total == 4223

    def test_under_pressure_cgroup_and_system_psi(self) -> None:
        s = snap("v1-under-pressure.txt")
        assert s.usage == 66883584
        assert s.shmem == 46137344  # the held 44 MiB is shmem, inside `cache`
        assert s.file == 65286144
        assert s.workingset == 66883584 - 10924032 == 55959552
        assert s.pressure is not None and s.pressure.full is not None
        assert (s.pressure.some.avg10, s.pressure.some.avg60, s.pressure.some.avg300) == (21.0, 4.85, 1.06)
        assert s.pressure.some.total == 3673036 == s.pressure.full.total
        assert s.system_pressure is not None and s.system_pressure.full is not None
        assert s.system_pressure.some == PsiLine(21.97, 5.32, 1.34, 8631063)
        assert s.system_pressure.full == PsiLine(21.19, 5.14, 1.29, 8288337)
        assert s.stat is not None and s.stat["total_workingset_refault_file"] == 4600409

    def test_idle_usage_includes_kernel_memory(self) -> None:
        s = snap("v1-idle.txt")
        assert s.usage == 2572288
        assert s.anon is not None and s.file is not None
        assert s.anon + s.file == 2179072 < s.usage  # v1 usage also counts kernel memory

    def test_total_variants_are_preferred(self) -> None:
        text = "=== memory.usage_in_bytes\n100\n=== memory.stat\nrss 1\ncache 2\ntotal_rss 5\ntotal_cache 7\n"
        s = parse_snapshot(text)
        assert (s.anon, s.file) == (5, 7)
        assert s.stat_v2("anon") == 5

    def test_unlimited_v1(self) -> None:
        text = ("=== memory.limit_in_bytes\n9223372036854771712\n"
                "=== memory.memsw.limit_in_bytes\n9223372036854771712\n")
        s = parse_snapshot(text)
        assert s.limit is None and s.swap_limit is None

    def test_swap_allowance_v1(self) -> None:
        text = "=== memory.limit_in_bytes\n67108864\n=== memory.memsw.limit_in_bytes\n134217728\n"
        assert parse_snapshot(text).swap_limit == 64 * MIB  # --memory=64m --memory-swap=128m


class TestLiveCaptures:
    """Captured with this module's own commands on the development host (README)."""

    def test_host_side(self) -> None:
        s = snap("v1-live-host-side.txt")
        assert s.version == 1 and s.limit == 64 * MIB and s.swap_limit == 0
        assert s.files == frozenset(V1_FILES) | {"memory.pressure", "/proc/pressure/memory"}
        assert s.pressure is not None and s.system_pressure is not None

    def test_inside_has_no_cgroup_psi(self) -> None:
        s = snap("v1-live-inside.txt")
        assert s.version == 1 and s.limit == 64 * MIB
        assert s.pressure is None  # Docker mounts only the v1 hierarchies in a v1 container
        assert s.system_pressure is not None  # the host's figures, seen from inside


# --------------------------------------------------------------------------------------------
# version detection and missing files


class TestSnapshotShape:
    def test_version_from_names(self) -> None:
        assert parse_snapshot("=== memory.current\n1\n").version == 2
        assert parse_snapshot("=== memory.failcnt\n0\n").version == 1
        assert parse_snapshot("=== memory.stat\ntotal_cache 1\n").version == 1
        assert parse_snapshot("=== memory.stat\nanon 1\nfile 2\n").version == 2

    def test_forced_version(self) -> None:
        assert parse_snapshot("=== memory.stat\nanon 1\n", version=2).anon == 1

    def test_undetectable_or_mixed(self) -> None:
        with pytest.raises(ValueError, match="no memory cgroup files"):
            parse_snapshot("--- no memory cgroup interface under /sys/fs/cgroup\n")
        with pytest.raises(ValueError, match="mixes"):
            parse_snapshot("=== memory.current\n1\n=== memory.failcnt\n0\n")

    def test_missing_files_are_none(self) -> None:
        text = (CG / "v2-after-oom-kill.txt").read_text()
        kept = [s for s in text.split("=== ") if not s.startswith(("memory.peak", "memory.pressure",
                                                                    "memory.swap.max", "memory.stat"))]
        s = parse_snapshot("=== ".join(kept))
        assert s.peak is None and s.pressure is None and s.swap_limit is None
        assert s.stat is None and s.anon is None and s.workingset is None
        assert s.limit == 67108864 and s.oom_kill == 1


# --------------------------------------------------------------------------------------------
# the one-round-trip command, run against a directory laid out like a cgroup


def _lay_out(tmp_path: Path, fixture: str) -> Path:
    """Write each file of a capture into tmp_path/cg, as the kernel would expose it."""
    directory = tmp_path / "cg"
    directory.mkdir()
    for name, text in split_capture((CG / fixture).read_text()).files.items():
        if "/" not in name:
            (directory / name).write_text(text)
    return directory


def _run(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=True)
    assert result.stderr == ""
    return result.stdout


class TestSnapshotCommand:
    def test_v2_round_trip_equals_fixture(self, tmp_path: Path) -> None:
        directory = _lay_out(tmp_path, "v2-under-pressure.txt")
        out = _run(snapshot_command(2, str(directory), system_pressure=None))
        assert out.startswith("=== memory.max\n67108864\n=== memory.swap.max\n0\n")
        live, fixture = parse_snapshot(out), snap("v2-under-pressure.txt")
        assert live.files == fixture.files
        assert (live.usage, live.workingset, live.pressure, live.events) == (
            fixture.usage, fixture.workingset, fixture.pressure, fixture.events)

    def test_v1_with_separate_psi_and_system_psi(self, tmp_path: Path) -> None:
        directory = _lay_out(tmp_path, "v1-under-pressure.txt")
        capture = split_capture((CG / "v1-under-pressure.txt").read_text())
        psi = tmp_path / "unified-memory.pressure"
        psi.write_text(capture.files["memory.pressure"])
        system = tmp_path / "proc-pressure-memory"
        system.write_text(capture.files["/proc/pressure/memory"])
        out = _run(snapshot_command(1, str(directory), str(psi), system_pressure=str(system)))
        assert "=== (cgroup2 hierarchy) memory.pressure\n" in out
        assert f"=== host {system}\n" in out
        live, fixture = parse_snapshot(out), snap("v1-under-pressure.txt")
        assert live.pressure == fixture.pressure
        assert live.system_pressure == fixture.system_pressure
        assert live.stat == fixture.stat and live.oom_kill == 1 and live.failcnt == 0

    def test_absent_files_print_nothing(self, tmp_path: Path) -> None:
        directory = _lay_out(tmp_path, "v2-after-oom-kill.txt")
        (directory / "memory.peak").unlink()
        (directory / "memory.pressure").unlink()
        out = _run(snapshot_command(2, str(directory), system_pressure=str(tmp_path / "nope")))
        assert "memory.peak" not in out and "pressure" not in out
        s = parse_snapshot(out)
        assert s.peak is None and s.pressure is None and s.system_pressure is None
        assert s.oom_kill == 1

    def test_last_line_without_newline_and_odd_paths(self, tmp_path: Path) -> None:
        directory = tmp_path / "dir with 'quotes' and $dollar"
        directory.mkdir()
        (directory / "memory.current").write_text("4096")  # no trailing newline
        (directory / "memory.max").write_text("max\n")
        s = parse_snapshot(_run(snapshot_command(2, str(directory), system_pressure=None)))
        assert s.usage == 4096 and s.limit is None

    def test_read_capture_matches_command(self, tmp_path: Path) -> None:
        directory = _lay_out(tmp_path, "v1-after-cache-fill.txt")
        assert cgroup.read_capture(1, directory, system_pressure=None) == _run(
            snapshot_command(1, str(directory), system_pressure=None))

    def test_bad_version(self) -> None:
        with pytest.raises(ValueError):
            snapshot_command(3, "/x")

    def test_inside_command_is_one_script(self) -> None:
        argv = cgroup.inside_snapshot_command()
        assert argv[:2] == ["sh", "-c"] and len(argv) == 4
        assert INSIDE_V1_DIR in argv[2] and f"{INSIDE_V2_DIR}/memory.max" in argv[2]
        assert all(name in argv[2] for name in V1_FILES + V2_FILES)


# --------------------------------------------------------------------------------------------
# locating the cgroup


class TestLocate:
    def test_parse_proc_cgroup(self) -> None:
        lines = parse_proc_cgroup(proc("hybrid-docker-host-side.cgroup"))
        assert lines[0].hierarchy == 9 and lines[0].controllers == ("name=systemd",)
        assert lines[-1].hierarchy == 0 and lines[-1].controllers == ()
        assert all(line.path == f"/docker/{DOCKER_ID}" for line in lines)

    def test_parse_mountinfo(self) -> None:
        mounts = {m.mount_point: m for m in parse_mountinfo(proc("hybrid-host.mountinfo"))}
        assert mounts["/sys/fs/cgroup/memory"].fstype == "cgroup"
        assert mounts["/sys/fs/cgroup/memory"].super_options == ("rw", "memory")
        assert mounts["/sys/fs/cgroup/unified"].fstype == "cgroup2"
        # an optional field ("shared:1") before the separator
        assert mounts["/var/lib/docker"].fstype == "ext4"

    def test_mountinfo_octal_escapes(self) -> None:
        mounts = parse_mountinfo("40 31 0:37 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n")
        assert mounts[0].mount_point == "/mnt/my cg"

    def test_hybrid_host_self(self) -> None:
        text, mi = proc("hybrid-host-self.cgroup"), proc("hybrid-host.mountinfo")
        assert memory_cgroup_dir(text, mi) == CgroupDir(
            1, "/sys/fs/cgroup/memory/process_api/110d62c9706ffef8d7a7dfb2465e36b4")
        assert cgroup2_dir(text, mi) == "/sys/fs/cgroup/unified"

    def test_hybrid_docker_host_side(self) -> None:
        text, mi = proc("hybrid-docker-host-side.cgroup"), proc("hybrid-host.mountinfo")
        assert memory_cgroup_dir(text, mi) == CgroupDir(1, f"/sys/fs/cgroup/memory/docker/{DOCKER_ID}")
        # PSI of a v1 container lives in the cgroup2 tree (kernel/sched/psi.c: the default hierarchy)
        assert cgroup2_dir(text, mi) == f"/sys/fs/cgroup/unified/docker/{DOCKER_ID}"

    def test_hybrid_docker_inside(self) -> None:
        text, mi = proc("hybrid-docker-inside.cgroup"), proc("hybrid-docker-inside.mountinfo")
        # the mount root is /docker/<id>, the same path /proc/self/cgroup shows: stripped
        assert memory_cgroup_dir(text, mi) == CgroupDir(1, INSIDE_V1_DIR)
        assert cgroup2_dir(text, mi) is None  # no cgroup2 mount in a v1 container

    def test_v1_systemd_driver(self) -> None:
        text, mi = proc("v1-systemd-driver-host-side.cgroup"), proc("hybrid-host.mountinfo")
        scope = f"system.slice/docker-{DOCKER_ID}.scope"
        assert memory_cgroup_dir(text, mi) == CgroupDir(1, f"/sys/fs/cgroup/memory/{scope}")
        assert cgroup2_dir(text, mi) == f"/sys/fs/cgroup/unified/{scope}"

    def test_pure_v2_systemd_and_cgroupfs(self) -> None:
        mi = proc("v2-host.mountinfo")
        assert memory_cgroup_dir(proc("v2-systemd-driver-host-side.cgroup"), mi) == CgroupDir(
            2, f"/sys/fs/cgroup/system.slice/docker-{DOCKER_ID}.scope")
        assert memory_cgroup_dir(proc("v2-cgroupfs-driver-host-side.cgroup"), mi) == CgroupDir(
            2, f"/sys/fs/cgroup/docker/{DOCKER_ID}")

    def test_v2_inside_private_namespace(self) -> None:
        text, mi = proc("v2-container-inside.cgroup"), proc("v2-container-inside.mountinfo")
        assert memory_cgroup_dir(text, mi) == CgroupDir(2, INSIDE_V2_DIR)
        assert cgroup2_dir(text, mi) == INSIDE_V2_DIR

    def test_outside_the_namespace_is_unreachable(self) -> None:
        assert memory_cgroup_dir("0::/../sibling\n", proc("v2-container-inside.mountinfo")) is None

    def test_no_mount(self) -> None:
        assert memory_cgroup_dir("4:memory:/docker/x\n", proc("v2-host.mountinfo")) is None
        assert cgroup2_dir("4:memory:/docker/x\n", proc("hybrid-host.mountinfo")) is None

    def test_host_functions_read_a_proc_root(self, tmp_path: Path) -> None:
        (tmp_path / "4242").mkdir()
        (tmp_path / "4242" / "cgroup").write_text(proc("hybrid-docker-host-side.cgroup"))
        (tmp_path / "self").mkdir()
        (tmp_path / "self" / "mountinfo").write_text(proc("hybrid-host.mountinfo"))
        assert cgroup.host_cgroup_dir(4242, proc=str(tmp_path)) == f"/sys/fs/cgroup/memory/docker/{DOCKER_ID}"
        assert cgroup.host_psi_path(4242, proc=str(tmp_path), must_exist=False) == (
            f"/sys/fs/cgroup/unified/docker/{DOCKER_ID}/memory.pressure")
        mi = tmp_path / "v2.mountinfo"
        mi.write_text(proc("hybrid-docker-inside.mountinfo"))
        assert cgroup.host_psi_path(4242, proc=str(tmp_path), mountinfo=str(mi), must_exist=False) is None

    def test_detect_version(self, tmp_path: Path) -> None:
        v2 = tmp_path / "v2"
        v2.mkdir()
        (v2 / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
        assert detect_version(v2) == 2
        hybrid = tmp_path / "hybrid"
        (hybrid / "memory").mkdir(parents=True)
        (hybrid / "unified").mkdir()
        (hybrid / "unified" / "cgroup.controllers").write_text("hugetlb\n")
        assert detect_version(hybrid) == 1
        no_memory = tmp_path / "no-memory"
        no_memory.mkdir()
        (no_memory / "cgroup.controllers").write_text("cpu io pids\n")
        assert detect_version(no_memory) is None
        assert detect_version(tmp_path / "absent") is None


# --------------------------------------------------------------------------------------------
# reclaim


class TestReclaim:
    def test_v1_force_empty(self, tmp_path: Path) -> None:
        (tmp_path / "memory.force_empty").write_text("")
        result = cgroup.reclaim(tmp_path, 1)
        assert result.complete and result.version == 1 and result.requested is None
        assert (tmp_path / "memory.force_empty").read_text() == "0\n"

    def test_v2_reclaims_current_usage(self, tmp_path: Path) -> None:
        (tmp_path / "memory.current").write_text("52723712\n")
        (tmp_path / "memory.reclaim").write_text("")
        result = cgroup.reclaim(tmp_path, 2)
        assert result.complete and result.requested == 52723712
        assert (tmp_path / "memory.reclaim").read_text() == "52723712\n"

    def test_v2_eagain_is_reported_not_raised(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        def short_reclaim(path: str, data: bytes) -> None:
            raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)

        monkeypatch.setattr(reclaiming, "_write_file", short_reclaim)
        result = cgroup.reclaim(tmp_path, 2, amount=1 << 30)
        assert not result.complete and result.requested == 1 << 30 and "EAGAIN" in result.detail

    def test_other_errors_propagate(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        def read_only(path: str, data: bytes) -> None:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)

        monkeypatch.setattr(reclaiming, "_write_file", read_only)
        with pytest.raises(OSError) as info:
            cgroup.reclaim(tmp_path, 2, amount=1)
        assert info.value.errno == errno.EROFS
        with pytest.raises(FileNotFoundError):  # the real writer: no such cgroup file
            monkeypatch.undo()
            cgroup.reclaim(tmp_path / "gone", 1)

    def test_commands(self, tmp_path: Path) -> None:
        (tmp_path / "memory.force_empty").write_text("")
        assert _run(cgroup.reclaim_command(1, str(tmp_path))) == "reclaim: done 0\n"
        assert (tmp_path / "memory.force_empty").read_text() == "0\n"
        (tmp_path / "memory.current").write_text("8192\n")
        (tmp_path / "memory.reclaim").write_text("")
        assert _run(cgroup.reclaim_command(2, str(tmp_path))) == "reclaim: done 8192\n"
        assert (tmp_path / "memory.reclaim").read_text() == "8192\n"
        assert _run(cgroup.reclaim_command(2, str(tmp_path), amount=4096)) == "reclaim: done 4096\n"

    def test_command_write_error_on_v2_is_partial(self, tmp_path: Path) -> None:
        # /dev/full opens fine and fails the write (ENOSPC), standing in for EAGAIN.
        (tmp_path / "memory.reclaim").symlink_to("/dev/full")
        assert _run(cgroup.reclaim_command(2, str(tmp_path), amount=1)) == "reclaim: partial 1\n"

    def test_command_not_writable(self, tmp_path: Path) -> None:
        result = subprocess.run(cgroup.reclaim_command(1, str(tmp_path / "gone")), capture_output=True,
                                text=True, timeout=20)
        assert result.returncode == 1 and result.stdout.startswith("reclaim: failed:")


# --------------------------------------------------------------------------------------------
# live, on this machine (no Docker): the test process's own memory cgroup


def _own_cgroup() -> CgroupDir | None:
    try:
        text, mountinfo = Path("/proc/self/cgroup").read_text(), Path("/proc/self/mountinfo").read_text()
        return memory_cgroup_dir(text, mountinfo)
    except OSError:
        return None


OWN = _own_cgroup()
needs_memcg = pytest.mark.skipif(OWN is None or not os.path.isdir(OWN.path),
                                 reason="no readable memory cgroup for this process")
HYBRID = Path("/sys/fs/cgroup/memory").is_dir() and Path("/sys/fs/cgroup/unified").is_dir()


class TestLive:
    @pytest.mark.skipif(not HYBRID, reason="only on a cgroup v1 hybrid host like the development VM")
    def test_detect_version_hybrid_host(self) -> None:
        assert detect_version() == 1
        assert OWN is not None and OWN.version == 1

    @needs_memcg
    def test_detect_version_agrees_with_own_cgroup(self) -> None:
        assert OWN is not None and detect_version() == OWN.version

    @needs_memcg
    def test_snapshot_of_own_cgroup(self) -> None:
        assert OWN is not None
        psi = cgroup.host_psi_path("self")
        s = parse_snapshot(_run(snapshot_command(OWN.version, OWN.path, psi)), timestamp=3.0)
        assert s.version == OWN.version and s.timestamp == 3.0
        if OWN.version == 1:
            assert set(V1_FILES) <= s.files
        assert s.files == cgroup.read_snapshot(OWN.version, OWN.path, psi).files
        assert s.usage is not None and s.usage > 0
        assert s.anon is not None and s.anon > 0  # this Python process's heap is in there
        assert s.file is not None and s.inactive_file is not None
        assert s.workingset is not None and 0 <= s.workingset <= s.usage
        assert s.limit is None or s.limit > 0
        assert s.oom_kill is not None and s.oom_kill >= 0
        if OWN.version == 1:
            assert s.failcnt is not None and s.failcnt >= 0 and s.under_oom is False
        if psi is not None:
            assert s.pressure is not None and s.pressure.some.total >= 0
        if Path("/proc/pressure/memory").exists():
            assert s.system_pressure is not None

    @needs_memcg
    def test_inside_command_on_the_host_reads_a_root_cgroup(self) -> None:
        if not Path(INSIDE_V1_DIR, "memory.limit_in_bytes").exists() and not any(
                Path("/sys/fs/cgroup", f).exists() for f in ("memory.max", "memory.current")):
            pytest.skip("the root cgroup of this v2 host has no memory files to read (a container's has)")
        s = parse_snapshot(_run(cgroup.inside_snapshot_command()))
        assert s.version == (1 if Path(INSIDE_V1_DIR, "memory.limit_in_bytes").exists() else 2)
        assert s.stat is not None
