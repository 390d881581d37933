"""What the proving ground reads from `lab run NAME --json` (runs in the guest, stdlib only).

Prints the numbers that matter on the host shape (swap in/out, swap used, the sandbox's own
PSI, OOM kills) and, for swap-thrash, fails unless swap was really used both ways and the
sandbox's PSI `some` rose: the issue's proof that swap-thrash ran for real.
"""

# ruff: noqa: T201  (runs in the guest and prints what it read)
import json
import sys
from pathlib import Path


def host_has_swap(meminfo: str = "/proc/meminfo") -> bool:
    """SwapTotal above 0 (the v2-cgroupfs lane has a swap file; v2-systemd has none)."""
    try:
        for line in Path(meminfo).read_text().splitlines():
            if line.startswith("SwapTotal:"):
                return int(line.split()[1]) > 0
    except (OSError, ValueError, IndexError):
        pass
    return False


def main(path: str, name: str, has_swap: bool | None = None) -> int:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        print(f"no JSON from lab run {name}: {exc}")
        return 1
    samples = data.get("samples") or []

    def series(key):
        return [s[key] for s in samples if isinstance(s.get(key), (int, float))]

    def delta(key):
        values = series(key)
        return values[-1] - values[0] if values else None

    def peak(key):
        values = series(key)
        return max(values) if values else None

    numbers = {
        "status": data.get("status"), "cgroup": f"v{data.get('cgroup_version')}",
        "psi_source": data.get("psi_source"), "samples": len(samples),
        "pswpout_delta": delta("host_pswpout"), "pswpin_delta": delta("host_pswpin"),
        "swap_peak_bytes": peak("swap"), "psi_some_avg10_peak": peak("psi_some_avg10"),
        "psi_some_total_delta_us": delta("psi_some_total"),
        "oom_kills": peak("oom_kill"),
    }
    print("summary: " + " ".join(f"{k}={v}" for k, v in numbers.items()))
    for e in data.get("expectations") or []:
        print(f"  [{e.get('state')}] {e.get('message')}: {e.get('detail')}")
    if name == "swap-thrash" and not (host_has_swap() if has_swap is None else has_swap):
        # a lane without swap: the scenario requires swap, so it must say skipped, and nothing more
        held = data.get("status") == "skipped"
        print(f"  proving ground: {'held' if held else 'FAILED'}: no swap on this host, so the scenario is skipped")
        return 0 if held else 1
    if name == "swap-thrash":
        proof = {
            "pages swapped out (pswpout delta > 0)": (numbers["pswpout_delta"] or 0) > 0,
            "pages swapped in (pswpin delta > 0)": (numbers["pswpin_delta"] or 0) > 0,
            "the sandbox's cgroup used swap": (numbers["swap_peak_bytes"] or 0) > 0,
            "the sandbox's PSI some rose": (numbers["psi_some_total_delta_us"] or 0) > 0
            and data.get("psi_source") == "sandbox",
        }
        for what, held in proof.items():
            print(f"  proving ground: {'held' if held else 'FAILED'}: {what}")
        if not all(proof.values()):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
