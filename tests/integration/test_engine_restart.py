"""Nothing is lost when the Docker engine restarts: `lab start` resumes the stopped sandboxes, answers kept.

The engine restarted here is a private dockerd this test starts (its own socket,
data-root, exec-root and pidfile, no bridge, no iptables), never the system's: other
work shares that one. The lab's image is copied into it with `docker save | docker load`,
labcoat is pointed at it with DOCKER_HOST, and the fixture's finalizer always stops it and
removes its folders, also when the test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]
READY_SECONDS = 90


@dataclass
class PrivateEngine:
    folder: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def sock(self) -> Path:
        return self.folder / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def argv(self) -> list[str]:
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        config = self.folder / "daemon.json"
        config.write_text("{}\n")  # not the system's /etc/docker/daemon.json
        return [dockerd, "-H", self.host, "--data-root", str(self.folder / "data"),
                "--exec-root", str(self.folder / "exec"), "--pidfile", str(self.folder / "dockerd.pid"),
                "--config-file", str(config), "--bridge=none", "--iptables=false", "--ip-masq=false",
                "--ip-forward=false", "--log-level=warn"]

    def start(self) -> None:
        log = open(self.folder / "dockerd.log", "ab")  # noqa: SIM115 - the daemon keeps it open
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the private dockerd exited {self.proc.returncode}: {self.log_tail()}")
            if self.docker("info", "--format", "{{.ServerVersion}}", check=False).returncode == 0:
                return
            time.sleep(0.3)
        raise RuntimeError(f"the private dockerd did not answer within {READY_SECONDS} s: {self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, wait: float = 60) -> None:
        """Stop the daemon as a restart or shutdown does (SIGTERM: it stops its containers, exit 143)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def docker(self, *args: str, check: bool = True, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["docker", "-H", self.host, *args], capture_output=True, timeout=120, check=check,
                              **kwargs)  # type: ignore[call-overload]

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return (self.folder / "dockerd.log").read_text(errors="replace")[-1500:]
        return ""


def _tree(folder: Path) -> str:
    """Every file under folder with its size: a failure message's evidence."""
    return "\n".join(f"  {p.relative_to(folder)} ({p.stat().st_size} B)" for p in sorted(folder.rglob("*"))
                     if p.is_file()) or "  (none)"


def flat(text: str) -> str:
    """The terminal's line wrapping undone."""
    return " ".join(text.split())


def _unmount_below(folder: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(str(folder) + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


@pytest.fixture
def private_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[PrivateEngine]:
    if os.geteuid() != 0:
        if os.environ.get("CI") or os.environ.get("LAB_REQUIRE_DOCKER"):
            pytest.fail("restarting a private Docker engine needs root")
        pytest.skip("restarting a private Docker engine needs root")
    from labcoat.backends.docker import DockerBackend
    from labcoat.content.catalog import Catalog
    from labcoat.runner.session import ensure_lab_image

    catalog = Catalog.load(ROOT)
    system = DockerBackend()
    tag = ensure_lab_image(catalog, system, catalog.lab("5.3").sandbox.image, lambda m, f: None)
    engine = PrivateEngine(Path(tempfile.mkdtemp(prefix="lc-dockerd-")))
    try:
        engine.start()
        save = subprocess.Popen(["docker", "save", tag, "labcoat/sandbox:latest"], stdout=subprocess.PIPE)
        engine.docker("load", stdin=save.stdout)
        assert save.wait(timeout=120) == 0
        monkeypatch.setenv("DOCKER_HOST", engine.host)
        yield engine
    finally:
        monkeypatch.delenv("DOCKER_HOST", raising=False)
        with contextlib.suppress(Exception):
            if engine.proc is not None and engine.proc.poll() is None:
                ids = engine.docker("ps", "-aq", check=False).stdout.decode().split()
                if ids:
                    engine.docker("rm", "-f", *ids, check=False)
        engine.stop(signal.SIGTERM, wait=30)
        _unmount_below(engine.folder)
        shutil.rmtree(engine.folder, ignore_errors=True)


# Known flaky (1 of 3 clean CI runs on 2026-12-01): after `docker rm -f` of everything, `lab start` once
# started afresh instead of putting the answers back; cause not found yet (docs/design.md "Known flakiness").
# The assertion now prints the host's answers and the engine's containers, the two things the restore reads.
@pytest.mark.flaky(reruns=1)
def test_answers_survive_an_engine_restart_and_lab_start_resumes(cli, private_engine):
    from labcoat.backends.docker import DockerBackend
    from labcoat.content.catalog import Catalog
    from labcoat.runner.session import answers_root, current_session, owner
    from labcoat.runner.steps import draw_vars

    started = cli("--backend", "docker", "start", "5.3", "--quiet")
    assert started.exit_code == 0, started
    backend = DockerBackend()
    session = current_session(backend, "5.3")
    main, part3 = session.main, session.parts["part3"]
    ids = {sb.machine.id for sb in session.all}
    seed = main.seed
    assert backend.run(main.machine, ["answer", "part1", "mem_free", "12345"]).succeeded
    assert backend.run(main.machine, ["answer", "part2", "cold_seconds", "0.42"]).succeeded
    assert backend.run(part3.machine, ["sh", "-c", "echo mine > /root/notes.txt"]).succeeded

    private_engine.stop(signal.SIGTERM)  # the engine goes down, as on a reboot or a restart
    private_engine.start()
    states = json.loads(private_engine.docker("inspect", *ids).stdout)
    assert all(not s["State"]["Running"] for s in states), [s["State"]["Status"] for s in states]

    checked = cli("--backend", "docker", "check")
    assert checked.exit_code == 4, checked  # README: 4, never the learner's fault
    assert "are stopped" in flat(checked.stderr) and "lab start 5.3" in flat(checked.stderr), checked
    assert "answers are kept" in flat(checked.stderr) and "Traceback" not in checked.stderr

    resumed = cli("--backend", "docker", "start", "5.3", "--quiet")
    assert resumed.exit_code == 0, resumed
    assert "resumed" in resumed.stderr and "answers and files are kept" in flat(resumed.stderr), resumed

    session = current_session(DockerBackend(), "5.3")
    assert {sb.machine.id for sb in session.all} == ids  # the same containers, not new ones
    assert session.main.seed == seed
    backend = DockerBackend()
    answers = backend.run(session.main.machine, ["cat", "/root/answers/part1.txt", "/root/answers/part2.txt"])
    assert "mem_free: 12345" in answers.stdout and "cold_seconds: 0.42" in answers.stdout, answers
    notes = backend.run(session.parts["part3"].machine, ["cat", "/root/notes.txt"])
    assert notes.stdout.strip() == "mine"
    # The parts' services run again, drawn from the same seed.
    drawn = draw_vars(Catalog.load(ROOT).scenario("lab53-part1"), seed)
    comms = backend.run(session.main.machine, ["ps", "-eo", "comm="]).stdout.split()
    assert {drawn["big_name"], drawn["mid_name"], drawn["small_name"]} <= set(comms), comms
    part3_comms = backend.run(session.parts["part3"].machine, ["ps", "-eo", "comm="]).stdout.split()
    drawn3 = draw_vars(Catalog.load(ROOT).scenario("lab53-part3"), seed)
    assert {drawn3["big_name"], drawn3["mid_name"], drawn3["hot_name"], "log-agent"} <= set(part3_comms), part3_comms
    # And `lab check` judges the work again (the made-up figure fails: exit 1, not "no lab").
    again = cli("--backend", "docker", "check", "part1")
    assert again.exit_code == 1, again

    # The answers also live on the host: sandboxes removed behind labcoat's back (a `docker system
    # prune` after the restart) come back with the same draw and the answers put back.
    ids = private_engine.docker("ps", "-aq", "--filter", f"label=labcoat.owner={owner()}").stdout.decode().split()
    private_engine.docker("rm", "-f", *ids)
    gone = cli("--backend", "docker", "check")
    assert gone.exit_code == 4 and "lab start" in gone.stderr, gone
    kept = _tree(answers_root())  # what orphaned_answers will look at (for the message if it fails)
    left = private_engine.docker("ps", "-a", "--format", "{{.Names}} {{.Status}} {{.Labels}}").stdout.decode()
    restored = cli("--backend", "docker", "start", "5.3", "--quiet")
    assert restored.exit_code == 0 and "answers were put back" in flat(restored.stderr), (
        f"{restored}\nanswers on the host before the start:\n{kept}\ncontainers left after `docker rm -f`:\n{left}")
    session = current_session(DockerBackend(), "5.3")
    assert session.main.seed == seed and not ({sb.machine.id for sb in session.all} & set(ids))
    answers = DockerBackend().run(session.main.machine, ["cat", "/root/answers/part1.txt"])
    assert "mem_free: 12345" in answers.stdout, answers

    # `lab stop` is the learner's own "start over": the next start has a new draw and no answers.
    assert cli("--backend", "docker", "stop").exit_code == 0
    assert cli("--backend", "docker", "start", "5.3", "--quiet").exit_code == 0
    session = current_session(DockerBackend(), "5.3")
    assert not DockerBackend().run(session.main.machine, ["cat", "/root/answers/part1.txt"]).succeeded
    assert cli("--backend", "docker", "stop").exit_code == 0
