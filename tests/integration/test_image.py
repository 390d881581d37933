"""The sandbox image for real: built with ensure_image (offline debootstrap here), then used.

The first build of a session takes about a minute (debootstrap); after that the rootfs
tarball in ~/.cache/labcoat/rootfs makes a rebuild take seconds, and an existing tag is
found with one API call.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from labcoat.backends import images
from labcoat.backends.images import engine as images_engine
from labcoat.content.loader import load_model
from labcoat.content.models import Image

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
IMAGE_DIR = ROOT / "images" / "sandbox"


@dataclass
class Built:
    client: Any
    image: Image
    tag: str
    seconds: float
    messages: list[tuple[float, str, float | None]] = field(default_factory=list)


@pytest.fixture(scope="session")
def client() -> Any:
    from labcoat.backends.docker import connect

    return connect()


@pytest.fixture(scope="session")
def built(client: Any) -> Built:
    image = load_model(Image, IMAGE_DIR / "image.yaml")
    messages: list[tuple[float, str, float | None]] = []
    start = time.monotonic()

    def progress(message: str, fraction: float | None) -> None:
        messages.append((time.monotonic() - start, message, fraction))

    tag = images.ensure_image(client, image, IMAGE_DIR, progress=progress)
    seconds = time.monotonic() - start
    return Built(client, image, tag, seconds, messages)


def _run(client: Any, tag: str, cmd: list[str], **kwargs: Any) -> tuple[int, str, Any]:
    """Run a container to completion; (exit code, output, inspect State). Always removed."""
    container = client.containers.run(tag, cmd, detach=True, network_mode="none", **kwargs)
    try:
        code = container.wait(timeout=120)["StatusCode"]
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
        container.reload()
        return code, output, container.attrs["State"]
    finally:
        container.remove(force=True)


def test_tag_and_config(built: Built, record_property: Any) -> None:
    assert built.tag == images.image_tag(built.image, IMAGE_DIR)
    attrs = built.client.api.inspect_image(built.tag)
    config = attrs["Config"]
    assert config["Labels"][images.LABEL_RECIPE] == images.recipe_hash(IMAGE_DIR)
    assert config["Labels"][images.LABEL_IMAGE] == "sandbox"
    assert config["Cmd"] == ["sleep", "infinity"]
    assert config["WorkingDir"] == "/root"
    assert any(e.startswith("PATH=") and "/usr/local/bin" in e for e in config["Env"])
    size_mib = attrs["Size"] / (1 << 20)
    # Measurements, in the junit XML (pytest --junitxml): first ensure_image of the session, image size.
    record_property("ensure_image_seconds", round(built.seconds, 2))
    record_property("image_size_mib", round(size_mib, 1))
    assert size_mib < 150
    # No temporary tag is left behind.
    assert not [
        t for img in built.client.images.list(name="labcoat/sandbox") for t in img.tags if "building-" in t
    ]


def test_every_required_command_exists(built: Built) -> None:
    commands = list(built.image.requires_commands)
    script = 'for c in "$@"; do command -v "$c" >/dev/null || echo "MISSING $c"; done; echo done'
    code, output, _ = _run(built.client, built.tag, ["sh", "-c", script, "sh", *commands])
    assert code == 0, output
    assert "MISSING" not in output
    assert output.strip().endswith("done")


def test_tools_work_inside(built: Built) -> None:
    script = (
        "set -e; ps -o pid,comm >/dev/null; free -m >/dev/null; vmstat 1 1 >/dev/null; "
        "dd if=/dev/zero of=/tmp/f bs=1M count=4 status=none; fincore --bytes /tmp/f; "
        "/usr/bin/time -f 'maxrss=%M' hog --exit --step-ms 0 8 >/dev/null; pstree >/dev/null; "
        "awk 'BEGIN{print \"awk ok\"}'"
    )
    code, output, _ = _run(
        built.client, built.tag, ["sh", "-c", script], mem_limit="64m", memswap_limit="64m"
    )
    assert code == 0, output
    assert re.search(r"4194304\s+1024\s+4194304\s+/tmp/f", output), output
    maxrss_kib = int(re.search(r"maxrss=(\d+)", output).group(1))  # type: ignore[union-attr]
    assert 8 * 1024 <= maxrss_kib < 12 * 1024
    assert "awk ok" in output


def test_hog_sees_the_container_limit(built: Built) -> None:
    code, output, _ = _run(
        built.client,
        built.tag,
        ["hog", "--exit", "--step-ms", "0", "4"],
        mem_limit="64m",
        memswap_limit="64m",
    )
    assert code == 0, output
    assert re.search(r"limit_mib=64 cgroup=v[12]", output), output


def test_hog_refuses_in_a_container_without_a_limit(built: Built) -> None:
    code, output, _ = _run(built.client, built.tag, ["hog", "4"])
    assert code == 3, output
    assert "refusing to run" in output


def test_hog_is_oom_killed(built: Built) -> None:
    code, output, state = _run(
        built.client,
        built.tag,
        ["hog", "--name", "victim", "200"],
        mem_limit="64m",
        memswap_limit="64m",
    )
    assert code == 137, output
    assert state["OOMKilled"] is True
    reached = [int(m) for m in re.findall(r"hog victim pid=1 rss_mib=(\d+)", output)]
    assert reached and max(reached) < 64, output
    assert "holding" not in output


def test_hog_name_shows_in_ps(built: Built) -> None:
    script = "hog --name piggy --step-ms 0 8 >/dev/null & sleep 1; cat /proc/$!/comm; ps -o comm= -p $!"
    code, output, _ = _run(
        built.client, built.tag, ["sh", "-c", script], mem_limit="64m", memswap_limit="64m"
    )
    assert code == 0, output
    assert output.split() == ["piggy", "piggy"]


def test_hog_leaks_at_its_rate_and_hides_it(built: Built) -> None:
    """hog --leak: RSS grows at the rate asked (VSZ does not), and ps shows only the name."""
    script = ("hog --name leaky --step-ms 0 --leak 128 --leak-cap 16 4 >/dev/null & sleep 1; "
              "t0=$(date +%s%N); a=$(ps -o rss=,vsz= -p $!); sleep 4; t1=$(date +%s%N); b=$(ps -o rss=,vsz= -p $!); "
              "echo $a $b $(( (t1 - t0) / 1000000 )); ps -o args= -p $!; cat /proc/$!/cmdline | tr '\\0' ' '; echo")
    code, output, _ = _run(built.client, built.tag, ["sh", "-c", script], mem_limit="64m", memswap_limit="64m")
    assert code == 0, output
    first, args, cmdline = output.strip().splitlines()
    rss0, vsz0, rss1, vsz1, ms = (int(x) for x in first.split())
    assert 0.8 * 128 * ms / 1000 <= rss1 - rss0 <= 1.2 * 128 * ms / 1000, output  # KiB at 128 KiB/s
    assert vsz1 == vsz0
    assert args.strip() == "leaky" and cmdline.strip() == "leaky"  # the rate is not on show


def test_second_call_is_fast_and_does_not_build(built: Built, record_property: Any) -> None:
    said: list[str] = []
    start = time.monotonic()
    tag = images.ensure_image(built.client, built.image, IMAGE_DIR, progress=lambda m, f: said.append(m))
    elapsed = time.monotonic() - start
    record_property("cached_ensure_image_ms", round(elapsed * 1000, 2))
    assert tag == built.tag
    assert said == []
    assert elapsed < 2  # one API call (~5 ms); generous for a loaded machine


@pytest.fixture
def edited_copy(tmp_path: Path, client: Any) -> Iterator[Path]:
    """A copy of the image folder with hog.c edited: same packages, so the cached rootfs applies."""
    copy = tmp_path / "sandbox"
    shutil.copytree(IMAGE_DIR, copy)
    (copy / "hog.c").write_text((copy / "hog.c").read_text() + "\n/* edited by the test */\n")
    yield copy
    images_engine._remove_image_quietly(client, f"labcoat/sandbox:{images.recipe_hash(copy)}")


def test_changing_only_hog_reuses_the_cached_rootfs(
    built: Built, edited_copy: Path, record_property: Any
) -> None:
    if not images.rootfs_cache_path(built.image).is_file():
        pytest.skip("the image was not built with debootstrap on this machine (no cached rootfs)")
    said: list[str] = []
    start = time.monotonic()
    # prune=False: the session's image must survive this extra build.
    fractions: list[float] = []

    def progress(message: str, fraction: float | None) -> None:
        said.append(message)
        if fraction is not None:
            fractions.append(fraction)

    tag = images.ensure_image(built.client, built.image, edited_copy, progress=progress, prune=False)
    elapsed = time.monotonic() - start
    record_property("rebuild_after_hog_change_seconds", round(elapsed, 2))
    assert tag != built.tag
    assert any("cached root filesystem" in m for m in said), said
    assert not any(m.startswith("debootstrap") for m in said), said
    # Progress is reported while building and never goes backwards (timings belong in bench/).
    assert fractions and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert images_engine._image_exists(built.client, built.tag)
