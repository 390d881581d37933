"""The Debian mirror to debootstrap from: LABCOAT_DEBIAN_MIRROR, else the host's apt sources (one-line or deb822)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from labcoat.backends.images.recipe import REGISTRY_HINT
from labcoat.errors import EnvironmentProblem

DEFAULT_MIRROR = "http://deb.debian.org/debian"


def debian_mirror(suite: str = "bookworm", sources_dir: Path = Path("/etc/apt")) -> str:
    """The Debian mirror to debootstrap from: $LABCOAT_DEBIAN_MIRROR, else the host's apt
    source that carries `suite` (deb822 *.sources or one-line *.list), else deb.debian.org."""
    env = os.environ.get("LABCOAT_DEBIAN_MIRROR", "").strip()
    if env:
        return env.rstrip("/")
    for uri, suites in _apt_sources(sources_dir):
        if suite in suites and re.match(r"^(https?|file):/", uri):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def _check_mirror(mirror: str, suite: str) -> None:
    """Fail early, with a hint, when the mirror does not answer (debootstrap's own error is vague)."""
    if not mirror.startswith(("http://", "https://")):
        return
    url = f"{mirror}/dists/{suite}/InRelease"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=15):
            pass
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise EnvironmentProblem(
                f"the Debian mirror {mirror} has no suite {suite!r} ({url}: 404)",
                hint="check 'suite:' in image.yaml, or set LABCOAT_DEBIAN_MIRROR to a mirror that carries it",
            ) from None
        raise _mirror_problem(mirror, f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _mirror_problem(mirror, str(reason)) from None


def _mirror_problem(mirror: str, reason: str) -> EnvironmentProblem:
    return EnvironmentProblem(
        f"cannot reach the Debian mirror {mirror} ({reason})",
        hint="check the network or proxy (http_proxy is used), set LABCOAT_DEBIAN_MIRROR to a reachable mirror, "
        + REGISTRY_HINT,
    )


# ----------------------------------------------------------------------------- host facts


def _host_arch() -> str:
    dpkg = shutil.which("dpkg")
    if dpkg:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([dpkg, "--print-architecture"], capture_output=True, text=True, check=True)
            return out.stdout.strip()
    return os.uname().machine


def _apt_sources(apt_dir: Path) -> list[tuple[str, list[str]]]:
    """(uri, suites) of every enabled `deb` source in sources.list, sources.list.d/*.list and *.sources."""
    entries: list[tuple[str, list[str]]] = []
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for path in files:
        with contextlib.suppress(OSError):
            for line in path.read_text(errors="replace").splitlines():
                line = line.split("#", 1)[0].strip()
                line = re.sub(r"\[[^\]]*\]", " ", line)  # options like [arch=amd64 signed-by=...]
                fields = line.split()
                if len(fields) >= 3 and fields[0] == "deb":
                    entries.append((fields[1], [fields[2]]))
    for path in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        with contextlib.suppress(OSError):
            text = path.read_text(errors="replace")
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                key = None
                for line in stanza.splitlines():
                    if line.startswith("#") or not line.strip():
                        continue
                    if line[0] in " \t" and key:
                        fields[key] += " " + line.strip()
                        continue
                    key, _, value = line.partition(":")
                    key = key.strip().lower()
                    fields[key] = value.strip()
                if (
                    fields.get("enabled", "yes").lower() == "no"
                    or "deb" not in fields.get("types", "").split()
                ):
                    continue
                suites = fields.get("suites", "").split()
                entries.extend((uri, suites) for uri in fields.get("uris", "").split())
    return entries
