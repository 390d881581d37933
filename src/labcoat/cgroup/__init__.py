"""Read a sandbox's memory cgroup, v1 or v2, in one round trip, and normalise it.

A package: `parse` (single files and the capture format), `snapshot` (the normalised figures),
`read` (one round trip, inside or on the host), `locate` (which cgroup, where), `reclaiming`
(dropping its page cache). Import the names from `labcoat.cgroup`.

Everything here is pure text-in/value-out or path-taking, so the same code reads the
captured fixtures, a live host directory and the output of a command run in a container.

The wire format is the one of the fixtures: a few optional preamble lines (``--- kernel …``
comments, a status line), then for each file a header ``=== <name>`` followed by the file's
text. Headers may carry a qualifier before the name (``=== (cgroup2 hierarchy)
memory.pressure``, ``=== host /proc/pressure/memory``); the last word is the name.

Kernel references: Documentation/admin-guide/cgroup-v1/memory.rst,
Documentation/admin-guide/cgroup-v2.rst, mm/memcontrol.c, mm/memcontrol-v1.c, kernel/sched/psi.c.
"""

from __future__ import annotations

from labcoat.cgroup.locate import (
    CgroupDir,
    CgroupLine,
    Mount,
    cgroup2_dir,
    detect_version,
    host_cgroup_dir,
    host_psi_path,
    memory_cgroup_dir,
    parse_mountinfo,
    parse_proc_cgroup,
)
from labcoat.cgroup.parse import (
    FILE_PARSERS,
    INSIDE_V1_DIR,
    INSIDE_V2_DIR,
    SYSTEM_PSI_HEADER,
    SYSTEM_PSI_PATH,
    UNLIMITED_THRESHOLD,
    V1_FILES,
    V1_PSI_HEADER,
    V1_TO_V2_STAT,
    V2_FILES,
    Capture,
    Pressure,
    PsiLine,
    detect_capture_version,
    header_name,
    parse_file,
    parse_keyed,
    parse_limit,
    parse_pressure,
    parse_value,
    split_capture,
)
from labcoat.cgroup.read import (
    inside_snapshot_command,
    read_capture,
    read_snapshot,
    snapshot_command,
)
from labcoat.cgroup.reclaiming import (
    ReclaimResult,
    reclaim,
    reclaim_command,
)
from labcoat.cgroup.snapshot import (
    MemorySnapshot,
    parse_snapshot,
    snapshot_from_files,
)

__all__ = [
    "Capture", "CgroupDir", "CgroupLine", "FILE_PARSERS", "INSIDE_V1_DIR", "INSIDE_V2_DIR", "MemorySnapshot",
    "Mount", "Pressure", "PsiLine", "ReclaimResult", "SYSTEM_PSI_HEADER", "SYSTEM_PSI_PATH",
    "UNLIMITED_THRESHOLD", "V1_FILES", "V1_PSI_HEADER", "V1_TO_V2_STAT", "V2_FILES", "cgroup2_dir",
    "detect_capture_version", "detect_version", "header_name", "host_cgroup_dir", "host_psi_path",
    "inside_snapshot_command", "memory_cgroup_dir", "parse_file", "parse_keyed", "parse_limit",
    "parse_mountinfo", "parse_pressure", "parse_proc_cgroup", "parse_snapshot", "parse_value", "read_capture",
    "read_snapshot", "reclaim", "reclaim_command", "snapshot_command", "snapshot_from_files", "split_capture",
]
