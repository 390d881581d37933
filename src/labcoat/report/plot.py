"""A picture of a scenario run: memory, page cache and PSI over time, OOM kills marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labcoat.errors import EnvironmentProblem

MIB = 1 / (1 << 20)


def plot_run(record: dict[str, Any], path: Path) -> Path:
    """Write a PNG with two panels: memory (usage, anon, page cache, tmpfs, limit) and PSI avg10.

    OOM kills are vertical red lines labelled with the victim; marks and hog starts are
    light grey lines; the PSI panel says whether it shows the sandbox's own PSI or the
    host-wide figure.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EnvironmentProblem("plots need matplotlib", hint="pip install 'labcoat[plot]'") from None
    samples = record.get("samples", [])
    if not samples:
        raise EnvironmentProblem("nothing was sampled in this run, so there is nothing to plot",
                                 hint="a skipped run has no samples; `lab doctor` says what this host lacks")
    t = [s["t"] for s in samples]
    fig, (mem, psi) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True, height_ratios=(3, 2))

    def series(key: str) -> list[float | None]:
        return [s.get(key) * MIB if s.get(key) is not None else None for s in samples]  # type: ignore[operator]

    styles = (("usage", "cgroup usage", "tab:blue", 2.2), ("anon", "anonymous", "tab:orange", 1.5),
              ("file", "page cache (incl. tmpfs)", "tab:green", 1.5), ("shmem", "tmpfs/shmem", "tab:purple", 1.2),
              ("swap", "swap", "tab:brown", 1.2))
    for key, label, colour, width in styles:
        values = series(key)
        present = [v for v in values if v is not None]
        if present and (key not in ("shmem", "swap") or max(present) > 0):
            mem.plot(t, values, label=label, color=colour, linewidth=width)
    limits = [s.get("limit") for s in samples if s.get("limit")]
    top = max([v for k, *_ in styles for v in series(k) if v is not None] + [1.0])
    if limits:
        limit = limits[0] * MIB
        mem.axhline(limit, color="red", linestyle="--", linewidth=1.2, label=f"limit ({limit:.0f} MiB)")
        top = max(top, limit)
    mem.set_ylim(0, top * 1.3)  # room above the limit for the labels
    mem.set_ylabel("MiB")
    mem.grid(alpha=0.3)

    source = record.get("psi_source")
    psi_lines = (("pressure_some_avg10", "some", "tab:red", "-"), ("pressure_full_avg10", "full", "darkred", "--"))
    for key, label, colour, style in psi_lines:
        values = [s.get(key) for s in samples]
        if any(v is not None for v in values):
            psi.plot(t, values, label=f"{source} {label}", color=colour, linestyle=style)
    if source == "sandbox":
        values = [s.get("host_psi_some_avg10") for s in samples]
        if any(v is not None for v in values):
            psi.plot(t, values, label="host-wide some", color="grey", linewidth=1, alpha=0.7)
    if source is None:
        psi.text(0.5, 0.5, "PSI not observable on this host", ha="center", va="center", transform=psi.transAxes)
    psi.set_ylabel("PSI avg10 (%)")
    psi.set_ylim(bottom=0)
    psi.set_xlabel("seconds since the run started")
    psi.set_title(f"memory pressure ({'the sandbox’s own cgroup' if source == 'sandbox' else source or 'none'})",
                  fontsize=9, loc="left")
    psi.grid(alpha=0.3)

    for event in record.get("events", []):
        if event["kind"] in ("hog", "mark"):
            for ax in (mem, psi):
                ax.axvline(event["t"], color="grey", linestyle=":", linewidth=0.8, alpha=0.6)
            label = f"{event['name']}" if event["kind"] == "hog" else f"[{event['label']}]"
            mem.annotate(label, (event["t"], top * 1.28), fontsize=7, color="dimgrey", rotation=90,
                         va="top", ha="right")
    kills = [e for e in record.get("events", []) if e["kind"] == "oom_kill"]
    span = (t[0], t[-1]) if t[-1] > t[0] else (t[0], t[0] + 1)
    for n, kill in enumerate(kills):
        x = kill.get("kernel_t", kill["t"])
        for ax in (mem, psi):
            ax.axvline(x, color="red", linewidth=1.2, alpha=0.8)
        right = (x - span[0]) / (span[1] - span[0]) > 0.75  # near the right edge: write to the left
        mem.annotate(f"OOM kill: {kill.get('victim', '?')}", (x, top * (1.26 - 0.06 * (n % 3))), fontsize=8,
                     color="red", ha="right" if right else "left", va="top",
                     xytext=(-3 if right else 3, 0), textcoords="offset points")
    # Legends beside the panels, so they never hide a line.
    mem.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    if psi.get_legend_handles_labels()[0]:
        psi.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    title = record.get("title", record.get("scenario", ""))
    fig.suptitle(f"{title}\n{record.get('scenario', '')}: {record.get('status', '')}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
