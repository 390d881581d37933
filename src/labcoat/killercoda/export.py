"""`lab export killercoda LAB OUT`: a lab as a Killercoda scenario for the `ubuntu` image.

Over 500 lines on purpose: one export, in the order the generated scenario runs on Killercoda.

What the scenario does on Killercoda's VM (Ubuntu 24.04 with Docker, the learner is root):

* Assets (copied by Killercoda before any script runs): labcoat's own wheel (`pip wheel
  --no-deps` of the checkout, or the installed distribution packed again when labcoat was
  installed from a wheel), the wheels of every dependency for the target
  Python versions plus pip's own wheel (`pip download`), the content folder as a tarball,
  and the files the lab's sandbox image adds to Debian (`answer`, and `hog` compiled
  statically here), which go to /usr/local/bin.
* The intro's `background` script (setup.sh) installs labcoat offline into a venv
  (`python3 -m venv --without-pip`, then pip run from its wheel: no python3-venv and no
  network needed), then runs `lab --backend local start LAB`: the VM is the sandbox, each
  part with a sandbox of its own gets a memory cgroup of its own. It writes
  /var/lib/labcoat/setup.done (or setup.failed) at the end; the intro's `foreground`
  script waits for it.
* Every part is a step: its instructions, a note on what the VM may lack, the reference
  solution (a file, `stepN/solution.sh`, and a collapsed block in the text), and a
  `verify` script that runs `lab --backend local check PART` (exit 0 = pass).

The local backend is used because it needs no image (the docker backend would have to
build the sandbox image on the VM: debootstrap and the network) and because the issue
asks `verify` to check with it. See docs/killercoda.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from labcoat.errors import ContentError, EnvironmentProblem, UsageProblem
from labcoat.killercoda.format import ASSETS_DIR, INDEX, validate_scenario

if TYPE_CHECKING:
    from labcoat.backends.base import Backend
    from labcoat.content.catalog import Catalog
    from labcoat.content.models import Lab, Part

Progress = Callable[[str], None]

# Killercoda's ubuntu image is Ubuntu 24.04 (Python 3.12); 3.11 and 3.13 cover Debian 12/13
# (the tests' stand-in VM is Debian 12) and newer Ubuntu releases.
DEFAULT_PYTHONS = ("3.11", "3.12", "3.13")
PLATFORMS = ("manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_28_x86_64", "linux_x86_64")
IMAGEID = "ubuntu"
VM_SANDBOX = "killercoda-vm"  # $LAB_SANDBOX in the solutions of parts that run on the host

# Where things live on the VM.
DIST = "/opt/labcoat/dist"
VENV = "/opt/labcoat/venv"
CONTENT = "/opt/labcoat/content"
STATE = "/var/lib/labcoat"
SETUP_LOG = "/var/log/labcoat-setup.log"
CONTENT_TARBALL = "labcoat-content.tar.gz"
EXPORT_MARKER = "labcoat-export.json"  # assets/: lab id and content tarball, for `lab import` to restore
# The image of parts that use the VM's Docker (`runs_on: host`), `docker save | gzip` split in parts
# of at most 8 MiB: Killercoda documents no asset size limit; Katacoda's documentation (O'Reilly's
# fork) says 9 MB per asset file, so no part is larger than that. docs/killercoda.md, "Part 5".
IMAGE_ARCHIVE = "labcoat-image-{id}.tar.gz"
IMAGE_PART_BYTES = 8 << 20
ENV = {
    "LABCOAT_BACKEND": "local",
    "LABCOAT_CONTENT": CONTENT,
    "LABCOAT_STATE": STATE,
    "LABCOAT_OWNER": "learner",
    "XDG_CACHE_HOME": "/var/cache",
}


@dataclass
class ImageArchive:
    """A Docker image shipped as assets: `docker save TAG | gzip`, split into `parts`."""

    image_id: str
    tag: str  # labcoat/<id>:<recipe hash>, as ensure_image names it
    parts: list[Path]
    sha256: str  # of the whole .tar.gz (the parts concatenated)
    size: int


@dataclass
class ExportResult:
    out: Path
    lab_id: str
    steps: list[str]
    sizes: dict[str, int] = field(default_factory=dict)  # what -> bytes
    wheels: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    images: list[ImageArchive] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.sizes.values())


# ----------------------------------------------------------------------------- wheels


def source_checkout() -> Path | None:
    """The labcoat checkout this package runs from (pyproject.toml beside src/), or None."""
    here = Path(__file__).resolve().parents[3]
    if (here / "pyproject.toml").is_file() and (here / "src" / "labcoat").is_dir():
        return here
    return None


def _pip(args: Sequence[str], what: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
        raise EnvironmentProblem(f"{what} failed (pip exited {proc.returncode}):\n  " + "\n  ".join(tail),
                                 hint="dependency wheels come from PyPI once, then from the cache "
                                 "(~/.cache/labcoat/killercoda-wheels)")


def build_labcoat_wheel(dest: Path, checkout: Path | None = None) -> Path:
    """labcoat's wheel in `dest`: `pip wheel --no-deps` of the checkout when labcoat runs from
    one (an editable install), else the installed distribution packed again (`installed_wheel`)."""
    checkout = checkout or source_checkout()
    if checkout is None:
        return installed_wheel(dest)
    with tempfile.TemporaryDirectory() as tmp:
        _pip(["wheel", "--no-deps", "--quiet", "-w", tmp, str(checkout)], "building labcoat's wheel")
        built = sorted(Path(tmp).glob("labcoat-*.whl"))
        if not built:
            raise EnvironmentProblem("pip wheel produced no labcoat wheel")
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / built[0].name
        shutil.copy2(built[0], target)
    return target


# Files of an installed distribution that are the installer's, not the wheel's.
_INSTALLER_FILES = {"INSTALLER", "REQUESTED", "RECORD", "direct_url.json"}


def installed_wheel(dest: Path, name: str = "labcoat") -> Path:
    """The installed distribution `name` packed back into a wheel (PEP 427), from its RECORD.

    Every file RECORD lists inside site-packages goes in as installed (byte code and the
    installer's own files excepted; console scripts are made again from entry_points.txt by
    whoever installs the wheel); RECORD is written anew with each file's sha256. No source
    checkout and no network: `lab export` works from `pip install labcoat`.
    """
    import base64
    import zipfile
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(name)
    except PackageNotFoundError:
        raise EnvironmentProblem(f"{name} is not installed as a distribution (no .dist-info found)",
                                 hint="install labcoat with pip (pip install labcoat, or pip install .)") from None
    files = dist.files or []
    info = next((f.parts[0] for f in files if f.parts and f.parts[0].endswith(".dist-info")), None)
    if info is None or not any(f.parts[0] == name for f in files if f.parts):
        raise EnvironmentProblem(f"the installed {name} lists none of its own files (an editable install?)",
                                 hint="export from labcoat's checkout, or from a non-editable install")
    wheel_meta = Path(str(dist.locate_file(f"{info}/WHEEL")))
    tag = "py3-none-any"
    if wheel_meta.is_file():
        tags = [line.split(":", 1)[1].strip() for line in wheel_meta.read_text().splitlines()
                if line.startswith("Tag:")]
        tag = tags[0] if tags else tag
    version = dist.version
    target = Path(dest) / f"{name}-{version}-{tag}.whl"
    target.parent.mkdir(parents=True, exist_ok=True)
    record: list[str] = []

    def digest(data: bytes) -> str:
        return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(files, key=lambda f: str(f)):
            rel = PurePosixPath(str(f).replace("\\", "/"))
            if not rel.parts or rel.parts[0] == ".." or "__pycache__" in rel.parts or rel.suffix == ".pyc":
                continue
            if rel.parts[0] == info and rel.name in _INSTALLER_FILES:
                continue
            path = Path(str(dist.locate_file(f)))
            if not path.is_file():
                raise EnvironmentProblem(f"the installed {name} is incomplete: {path} is missing",
                                         hint=f"reinstall it: pip install --force-reinstall {name}")
            data = path.read_bytes()
            zf.writestr(str(rel), data)
            record.append(f"{rel},{digest(data)},{len(data)}")
        record.append(f"{info}/RECORD,,")
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return target


def _requirements() -> list[str]:
    """labcoat's own dependencies (no extras), as its metadata lists them."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        reqs = requires("labcoat") or []
    except PackageNotFoundError:
        reqs = []
    return [r for r in reqs if "extra ==" not in r] or [
        "click>=8.1", "rich>=13.7", "pydantic>=2.6", "pyyaml>=6.0", "markdown-it-py>=3.0", "docker>=7.0",
        "pytest>=8.0", "pytest-testinfra>=10.1"]


def _constraints() -> list[str]:
    """Pins to the versions installed here, so the VM runs what the tests ran."""
    from importlib.metadata import distributions

    pins = {}
    for dist in distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        if name and name not in ("labcoat", "pip", "setuptools", "wheel"):
            pins[name] = dist.version
    return [f"{name}=={version}" for name, version in sorted(pins.items())]


def dependency_wheels(dest: Path, pythons: Sequence[str] = DEFAULT_PYTHONS,
                      progress: Progress | None = None) -> list[Path]:
    """Wheels of labcoat's dependencies (and pip) for each Python version, x86_64 Linux.

    Downloaded once with `pip download --only-binary=:all:` and kept in a cache keyed by the
    requirements, the pins and the Python versions; later exports copy from the cache.
    """
    say = progress or (lambda m: None)
    reqs, pins = _requirements(), _constraints()
    key = hashlib.sha256(json.dumps([reqs, pins, list(pythons), PLATFORMS]).encode()).hexdigest()[:16]
    from labcoat.paths import cache_dir

    cache = cache_dir() / "killercoda-wheels" / key
    if not (cache / ".complete").is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="download-", dir=cache.parent))
        try:
            constraints = work / "constraints.txt"
            constraints.write_text("\n".join(pins) + "\n")
            for version in pythons:
                say(f"downloading dependency wheels for Python {version}")
                args = ["download", "--quiet", "--dest", str(work), "--only-binary=:all:",
                        "--python-version", version, "--implementation", "cp", "-c", str(constraints)]
                for platform in PLATFORMS:
                    args += ["--platform", platform]
                _pip([*args, *reqs, "pip"], f"downloading the dependency wheels for Python {version}")
            constraints.unlink()
            (work / ".complete").write_text("\n".join(pythons) + "\n")
            if cache.exists():
                shutil.rmtree(cache)
            work.rename(cache)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for wheel in sorted(cache.glob("*.whl")):
        shutil.copy2(wheel, dest / wheel.name)
        out.append(dest / wheel.name)
    return out


# ----------------------------------------------------------------------------- image files


def image_files(catalog: Catalog, lab: Lab, dest: Path) -> list[tuple[Path, str]]:
    """The files the lab's images add to Debian (compiled C programs, installed scripts), built
    for the VM; returns (file in dest, folder it goes to on the VM)."""
    ids = dict.fromkeys([lab.sandbox.image, *(p.sandbox.image for p in lab.parts if p.sandbox)])
    out: dict[str, tuple[Path, str]] = {}
    dest.mkdir(parents=True, exist_ok=True)
    for image_id in ids:
        image, base = catalog.image(image_id), catalog.image_dir(image_id)
        for spec in image.install:
            folder, _, name = spec.dest.rpartition("/")
            target = dest / name
            shutil.copy2(base / spec.src, target)
            target.chmod(0o755)
            out.setdefault(name, (target, folder or "/"))
        for spec in image.compile:
            folder, _, name = spec.dest.rpartition("/")
            if name in out:
                continue
            gcc = shutil.which("gcc")
            if gcc is None:
                raise EnvironmentProblem(f"gcc is needed to build {spec.src} for the VM",
                                         hint="apt-get install gcc libc6-dev")
            target = dest / name
            proc = subprocess.run([gcc, "-static", "-O2", "-Wall", "-o", str(target), str(base / spec.src)],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise EnvironmentProblem(f"gcc -static {spec.src} failed: {proc.stderr.strip()[-400:]}",
                                         hint="apt-get install libc6-dev (static glibc)")
            out[name] = (target, folder or "/")
    return list(out.values())


def learner_images(lab: Lab) -> list[str]:
    """Ids of the images the learner's own docker commands use (parts that run on the host)."""
    ids = [p.learner_docker.image if p.learner_docker else lab.sandbox.image
           for p in lab.parts if p.runs_on == "host" or p.learner_containers]
    return list(dict.fromkeys(ids))


class _Split:
    """A write-only file object that cuts what it is given into numbered files of `size` bytes."""

    def __init__(self, stem: Path, size: int) -> None:
        self.stem, self.size, self.parts = stem, size, []
        self.digest, self.total = hashlib.sha256(), 0
        self._file: Any = None
        self._left = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            if self._left == 0:
                if self._file:
                    self._file.close()
                path = self.stem.with_name(f"{self.stem.name}.{len(self.parts):02d}")
                self._file, self._left = path.open("wb"), self.size
                self.parts.append(path)
            chunk = view[:self._left]
            self._file.write(chunk)
            self.digest.update(chunk)
            self._left -= len(chunk)
            self.total += len(chunk)
            view = view[len(chunk):]
        return len(data)

    def flush(self) -> None:
        if self._file:
            self._file.flush()

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None


def save_image(backend: Backend, catalog: Catalog, image_id: str, dest: Path, progress: Progress | None = None,
               part_bytes: int = IMAGE_PART_BYTES) -> ImageArchive:
    """`docker save` of the image (built first when the engine lacks it), gzip'd into parts in dest."""
    say = progress or (lambda m: None)
    tag = backend.ensure_image(image_id, catalog.image(image_id), catalog.image_dir(image_id),
                               progress=lambda m, f=None: say(str(m)))
    say(f"saving the image {tag} (docker save | gzip, {part_bytes >> 20} MiB parts)")
    return pack_archive(backend.save_image(tag), image_id, tag, dest, part_bytes)


def pack_archive(chunks: Iterable[bytes], image_id: str, tag: str, dest: Path,
                 part_bytes: int = IMAGE_PART_BYTES) -> ImageArchive:
    """A `docker save` stream gzip'd into parts of `part_bytes` in dest (IMAGE_ARCHIVE.NN)."""
    import gzip

    dest.mkdir(parents=True, exist_ok=True)
    split = _Split(dest / IMAGE_ARCHIVE.format(id=image_id), part_bytes)
    try:
        with gzip.GzipFile(fileobj=split, mode="wb", compresslevel=6, mtime=0) as gz:  # type: ignore[arg-type]
            for chunk in chunks:
                gz.write(chunk)
    finally:
        split.close()
    return ImageArchive(image_id, tag, split.parts, split.digest.hexdigest(), split.total)


def content_tarball(catalog: Catalog, dest: Path) -> Path:
    """The content folder (labs, checks, scenarios, quizzes, images) as a tar.gz."""
    from labcoat.content.catalog import CONTENT_DIRS

    dest.parent.mkdir(parents=True, exist_ok=True)

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if "__pycache__" in info.name.split("/"):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(dest, "w:gz") as tar:
        for name in CONTENT_DIRS:
            folder = catalog.root / name
            if folder.is_dir():
                tar.add(str(folder), arcname=name, filter=clean)
    return dest


# ----------------------------------------------------------------------------- scripts and text


def _env_lines() -> str:
    return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in ENV.items())


def image_setup(archives: Sequence[ImageArchive], wanted: Sequence[str]) -> str:
    """The part of setup.sh that puts the learner's images into the VM's Docker: `docker load` of
    the shipped archive (offline), else labcoat's own build (needs a registry or Debian's mirror).
    A failure is recorded in {STATE}/images.failed and does not stop the rest of the lab."""
    if not wanted:
        return ""
    shipped = {a.image_id: a for a in archives}
    calls = []
    for image_id in wanted:
        a = shipped.get(image_id)
        calls.append(f"load_image {shlex.quote(image_id)} {shlex.quote(a.tag) if a else '-'} "
                     f"{a.sha256 if a else '-'} || echo \"image {image_id}: $why\" >> {STATE}/images.failed")
    archive = f"{DIST}/{IMAGE_ARCHIVE.format(id='$1')}"
    return f"""
# The image the learner's own docker commands use, into the VM's Docker: loaded offline from the
# assets (docker save | gzip, in parts), else built by labcoat (a registry or Debian's mirror).
# A failure leaves {STATE}/images.failed; the rest of the lab works without it.
load_image() {{  # load_image ID TAG|- SHA256|-
  local tag=$2 sum=$3 got
  command -v docker >/dev/null || {{ why="this VM has no docker command"; return 1; }}
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || {{ why="the VM's Docker engine does not answer"; return 1; }}
  if [ "$tag" != - ] && docker image inspect "$tag" >/dev/null 2>&1; then
    echo "image $tag: already here"
  elif [ "$tag" != - ] && ls {archive}.* >/dev/null 2>&1; then
    got=$(cat {archive}.* | sha256sum | cut -d' ' -f1)
    [ "$got" = "$sum" ] || {{ why="the archive is damaged (sha256 $got, expected $sum)"; return 1; }}
    cat {archive}.* | gunzip | docker load || {{ why="docker load failed"; return 1; }}
  else
    echo "image $1: no archive shipped; building it (needs a registry or Debian's mirror)"
    tag=$({VENV}/bin/python -c 'import sys
from labcoat.backends import DEFAULT_BACKEND, get_backend
from labcoat.content.catalog import Catalog
c = Catalog.load()
print(get_backend(DEFAULT_BACKEND).ensure_image(sys.argv[1], c.image(sys.argv[1]), c.image_dir(sys.argv[1])))' "$1" | tail -n 1) \\
      || {{ why="building it failed"; return 1; }}
  fi
  docker tag "$tag" "labcoat/$1:latest" || {{ why="docker tag failed"; return 1; }}
  echo "image $tag ready as labcoat/$1:latest"
}}
rm -f {STATE}/images.failed
{chr(10).join(calls)}
"""


def setup_script(lab: Lab, installed: Sequence[tuple[str, str]], images: str = "") -> str:
    """The intro's background script: install labcoat offline, then prepare the lab."""
    checks = "\n".join(f"[ -x {shlex.quote(folder.rstrip('/') + '/' + name)} ] || fail \"asset {name} is missing\""
                       for name, folder in installed)
    return f"""#!/bin/bash
# labcoat: install labcoat offline and prepare lab {lab.id} (Killercoda intro background; runs hidden,
# as root). Progress: {SETUP_LOG}. Ends with {STATE}/setup.done, or setup.failed with the reason.
set -u
mkdir -p {STATE}
rm -f {STATE}/setup.done {STATE}/setup.failed
exec >>{SETUP_LOG} 2>&1
fail() {{ echo "labcoat setup failed: $*"; echo "$*" > {STATE}/setup.failed; exit 1; }}
echo "labcoat setup started $(date)"

# Killercoda copies the assets before the scripts run; wait a little in case it is still at it.
for _ in $(seq 60); do [ -f {DIST}/{CONTENT_TARBALL} ] && break; sleep 1; done
[ -f {DIST}/{CONTENT_TARBALL} ] || fail "the assets did not arrive in {DIST}"
{checks}

command -v python3 >/dev/null || fail "python3 is missing"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || fail "labcoat needs Python 3.11 or newer"
# No python3-venv needed: a venv without pip, then pip run straight from its wheel.
python3 -m venv --without-pip {VENV} || fail "python3 -m venv failed"
pip_wheel=$(ls {DIST}/pip-*.whl 2>/dev/null | head -n 1)
[ -n "$pip_wheel" ] || fail "pip's wheel is missing from {DIST}"
{VENV}/bin/python "$pip_wheel/pip" install --quiet --no-index --no-cache-dir --find-links {DIST} labcoat \\
  || fail "installing labcoat from {DIST} failed (no wheel for this Python?)"
ln -sf {VENV}/bin/lab /usr/local/bin/lab

mkdir -p {CONTENT}
tar -xzf {DIST}/{CONTENT_TARBALL} -C {CONTENT} || fail "unpacking the content failed"

cat > /etc/profile.d/labcoat.sh <<'EOF'
{_env_lines()}
EOF
grep -q labcoat.sh /root/.bashrc 2>/dev/null || echo '. /etc/profile.d/labcoat.sh' >> /root/.bashrc
. /etc/profile.d/labcoat.sh

lab --backend local start {shlex.quote(lab.id)} --quiet || fail "lab start {lab.id} failed (see {SETUP_LOG})"
{images}
touch {STATE}/setup.done
echo "labcoat setup finished $(date)"
"""


def wait_script(lab: Lab) -> str:
    """The intro's foreground script: wait for the setup, then say where things are."""
    return f"""#!/bin/bash
# labcoat: wait until the background setup has installed labcoat and started lab {lab.id}.
echo "Preparing lab {lab.id}: installing labcoat and starting the lab (about a minute)..."
while [ ! -f {STATE}/setup.done ] && [ ! -f {STATE}/setup.failed ]; do sleep 1; done
if [ -f {STATE}/setup.failed ]; then
  echo "The setup failed: $(cat {STATE}/setup.failed)"; tail -n 20 {SETUP_LOG}
else
  . /etc/profile.d/labcoat.sh
  [ -f {STATE}/images.failed ] && echo "Warning: a part that uses Docker cannot be done here: $(cat {STATE}/images.failed)"
  lab status
  echo; echo "Ready. Read a part with 'lab show part1'; check it with 'lab check part1'."
fi
"""


def verify_script(lab: Lab, part: Part) -> str:
    return f"""#!/bin/bash
# Killercoda's "Check" for {part.id} of lab {lab.id}: exit 0 passes. It runs labcoat's own checks
# with the local backend (the VM is the sandbox); `lab check {part.id}` in the terminal shows
# what passed, what failed and why.
if [ ! -f {STATE}/setup.done ]; then
  echo "The lab is not ready yet (still installing, or the setup failed: see {SETUP_LOG})."
  exit 1
fi
{_env_lines()}
exec /usr/local/bin/lab --backend local check {shlex.quote(part.id)}
"""


def solution_script(catalog: Catalog, lab: Lab, part: Part) -> str:
    """The part's reference solution for the VM's terminal, with the part's provocation: `lab provoke
    PART` after it, or running while it works (`provoke_when: during`), as selftest does it."""
    body = catalog.lab_file(lab.id, part.solution).read_text(encoding="utf-8").rstrip() + "\n"
    if part.runs_on == "host":
        where = "on the VM (it uses the docker command)"
        # Graded, such a script records answers with `docker exec "$LAB_SANDBOX" answer ...` (the lab's
        # sandbox is a container). Here the lab's machine is this VM: that exec runs right here.
        body = (f"export LAB_SANDBOX={shlex.quote(VM_SANDBOX)}\n"
                "docker() {  # `docker exec $LAB_SANDBOX CMD...`: on this VM the lab's sandbox is the VM itself\n"
                "  if [ \"${1:-}\" = exec ] && [ \"${2:-}\" = \"$LAB_SANDBOX\" ]; then shift 2; \"$@\"; "
                "else command docker \"$@\"; fi\n}\n" + body)
    else:
        # through the backend's own door: `lab shell PART` is where the part happens (its machine: the
        # part's cgroup, and whatever view of it the local backend gives that machine)
        where = f"in `lab shell {part.id}`, the part's machine"
        body = f"lab shell {shlex.quote(part.id)} <<'LABCOAT_SOLUTION'\n{body}LABCOAT_SOLUTION\n"
    head = f"#!/bin/bash\n# Reference solution of {part.id}, lab {lab.id}: runs {where}.\n{_env_lines()}\n"
    if not part.provoke:
        return head + body
    provoke = f"lab provoke {shlex.quote(part.id)}"
    if part.provoke_when == "during":
        return (head + f"# the provocation runs while the solution works (its measurements are what the check "
                f"compares with)\n{provoke} >/tmp/labcoat-provoke-{part.id}.log 2>&1 &\nprovoking=$!\nsleep 2\n"
                f"(\n{body})\nrc=$?\nwait $provoking\nexit $rc\n")
    return head + f"(\n{body}) || exit $?\n# then the provocation the part asks for\n{provoke}\n"


def part_notes(part: Part) -> list[str]:
    """What a Killercoda VM under the local backend may not give this part, said in its text."""
    notes = []
    if "psi" in part.requires:
        notes.append("needs Pressure Stall Information (PSI). Where the VM's kernel has none, the check "
                     "is skipped, and a skipped check counts as passed.")
    for feature in part.requires:
        if feature != "psi":
            notes.append(f"needs the host feature `{feature}`; without it the check is skipped.")
    if part.sandbox:
        notes.append(f"runs in a memory cgroup of its own ({part.sandbox.memory}) that labcoat created on this "
                     "VM; there is no container here, so `ps` shows every process of the VM.")
    if part.provoke:
        notes.append(f"`lab provoke {part.id}` runs the scenario on this VM, inside that cgroup.")
    if part.runs_on == "host" or part.learner_containers:
        notes.append("uses this VM's Docker: the setup loaded labcoat's image into it (`docker images "
                     "labcoat/*`); where it could not, `cat /var/lib/labcoat/images.failed` says why. "
                     "Record answers with `answer` right in this terminal.")
    return notes


def step_text(catalog: Catalog, lab: Lab, part: Part, n: int) -> str:
    text = catalog.lab_file(lab.id, part.instructions).read_text(encoding="utf-8").rstrip() + "\n"
    notes = part_notes(part)
    if notes:
        text += "\n> **On this Killercoda VM** this part:\n>\n" + "".join(f"> - {note}\n" for note in notes)
    solution = catalog.lab_file(lab.id, part.solution).read_text(encoding="utf-8").rstrip()
    text += f"""
## Check

Run `lab check {part.id}` in the terminal: it says, per task, what passed, what failed and why.
The **Check** button runs the same checks.

<details><summary>Solution</summary>

The reference solution, also in this scenario's `step{n}/solution.sh`:

```bash
{solution}
```

</details>
"""
    return text


def intro_text(catalog: Catalog, lab: Lab) -> str:
    text = catalog.lab_file(lab.id, lab.intro).read_text(encoding="utf-8").rstrip() + "\n"
    return text + f"""
## On Killercoda

This VM is your sandbox: labcoat runs here with its **local** backend, in memory cgroups it
creates (the lab's {lab.sandbox.memory} limit, and one cgroup per part that has its own). The
terminal is already root, so `lab shell` is simply this terminal. The setup installs labcoat
and starts the lab in the background (about a minute): wait for "Ready" in the terminal.
Record answers with `answer PART KEY VALUE`; check with `lab check PART` or the **Check** button.
"""


def finish_text(lab: Lab) -> str:
    return f"""# Done

You finished lab {lab.id}, *{lab.title}*. `lab status` shows which parts passed.
On your own machine, `pip install labcoat` and `lab start {lab.id}` give you the same lab in
Docker sandboxes, where every part has a container of its own.
"""


# ----------------------------------------------------------------------------- the export


def export_lab(catalog: Catalog, lab_id: str, out: Path, *, pythons: Sequence[str] = DEFAULT_PYTHONS,
               force: bool = False, progress: Progress | None = None,
               wheels: Callable[[Path], list[Path]] | None = None,
               images: Callable[[str, Path], ImageArchive] | None = None, ship_images: bool = True,
               backend: Backend | None = None) -> ExportResult:
    """Write lab `lab_id` as a Killercoda scenario into `out` and validate it.

    `wheels(dest)` puts labcoat's and its dependencies' wheels into dest (default: build and
    download them, see build_labcoat_wheel and dependency_wheels); tests pass a stand-in.
    `images(image_id, dest)` ships an image the learner's docker commands use (default:
    `save_image` on `backend`, by default Docker on this machine); with `ship_images=False` none is shipped
    and the VM's setup builds it (a registry or Debian's mirror needed there).
    """
    say = progress or (lambda m: None)
    lab = catalog.lab(lab_id)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise UsageProblem(f"{out} is not empty", hint="pass --force to replace its contents")
        if (out / INDEX).is_file() or (out / ASSETS_DIR).is_dir():
            shutil.rmtree(out)
        else:
            raise UsageProblem(f"{out} is not empty and does not look like an earlier export; not replacing it")
    out.mkdir(parents=True, exist_ok=True)
    assets = out / ASSETS_DIR
    result = ExportResult(out=out, lab_id=lab.id, steps=[p.id for p in lab.parts])
    try:
        say("building labcoat's wheel and collecting the dependency wheels")
        if wheels is None:
            def wheels(dest: Path) -> list[Path]:
                return [build_labcoat_wheel(dest), *dependency_wheels(dest, pythons, say)]
        got = wheels(assets)
        result.wheels = sorted(w.name for w in got)
        if not any(w.name.startswith("labcoat-") for w in got):
            raise EnvironmentProblem("no labcoat wheel among the wheels to ship")
        say("packing the content and the image's own files")
        content_tarball(catalog, assets / CONTENT_TARBALL)
        from labcoat import __version__

        _write(assets / EXPORT_MARKER, json.dumps({"labcoat_export": 1, "lab": lab.id, "content": CONTENT_TARBALL,
                                                   "labcoat": __version__}, indent=2) + "\n")
        installed = [(path.name, folder) for path, folder in image_files(catalog, lab, assets)]
        wanted = learner_images(lab)
        if wanted and ship_images:
            for image_id in wanted:
                say(f"packing the image {image_id} for the VM's Docker")
                if images is not None:
                    result.images.append(images(image_id, assets))
                    continue
                if backend is None:
                    from labcoat.backends import DEFAULT_BACKEND, get_backend

                    backend = get_backend(DEFAULT_BACKEND)
                result.images.append(save_image(backend, catalog, image_id, assets, say))
        elif wanted:
            result.notes.append(f"no image shipped ({', '.join(wanted)}): the VM's setup builds it, which needs "
                                "a registry or Debian's mirror there")

        _write(out / "intro.md", intro_text(catalog, lab))
        _write(out / "setup.sh", setup_script(lab, installed, image_setup(result.images, wanted)), executable=True)
        _write(out / "wait.sh", wait_script(lab), executable=True)
        _write(out / "finish.md", finish_text(lab))
        steps = []
        for n, part in enumerate(lab.parts, start=1):
            _write(out / f"step{n}" / "text.md", step_text(catalog, lab, part, n))
            _write(out / f"step{n}" / "verify.sh", verify_script(lab, part), executable=True)
            _write(out / f"step{n}" / "solution.sh", solution_script(catalog, lab, part), executable=True)
            steps.append({"title": f"{part.id}: {part.title}", "text": f"step{n}/text.md",
                          "verify": f"step{n}/verify.sh"})
            result.notes += [f"{part.id}: this part {note}" for note in part_notes(part)]
        host_assets = [
            {"file": "*.whl", "target": DIST},
            {"file": CONTENT_TARBALL, "target": DIST},
            *({"file": IMAGE_ARCHIVE.format(id=a.image_id) + ".*", "target": DIST} for a in result.images),
            *({"file": name, "target": folder, "chmod": "+x"} for name, folder in installed),
        ]
        index = {
            "title": lab.title,
            "description": f"labcoat lab {lab.id}: hands-on, checked against the live kernel "
                           f"({len(lab.parts)} parts).",
            "details": {
                "intro": {"text": "intro.md", "background": "setup.sh", "foreground": "wait.sh"},
                "steps": steps,
                "finish": {"text": "finish.md"},
                "assets": {"host01": host_assets},
            },
            "backend": {"imageid": IMAGEID},
        }
        _write(out / INDEX, json.dumps(index, indent=2) + "\n")
        problems = validate_scenario(out)
        if problems:
            raise ContentError("the exported scenario is not valid:\n  " + "\n  ".join(problems))
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    result.sizes = sizes_of(out)
    return result


def sizes_of(out: Path) -> dict[str, int]:
    """Bytes per kind of file in an export: dependency wheels, labcoat's wheel, content, the rest."""
    sizes = {"labcoat wheel": 0, "dependency wheels": 0, "content tarball": 0, "image files": 0, "docker image": 0,
             "scenario text": 0}
    for path in Path(out).rglob("*"):
        if not path.is_file():
            continue
        size = path.stat().st_size
        if path.suffix == ".whl":
            sizes["labcoat wheel" if path.name.startswith("labcoat-") else "dependency wheels"] += size
        elif path.name == CONTENT_TARBALL:
            sizes["content tarball"] += size
        elif path.name.startswith(IMAGE_ARCHIVE.split("{", 1)[0]):
            sizes["docker image"] += size
        elif path.parent.name == ASSETS_DIR and path.name != EXPORT_MARKER:
            sizes["image files"] += size
        else:
            sizes["scenario text"] += size
    return sizes


def _write(path: Path, text: str, *, executable: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if executable:
        with contextlib.suppress(OSError):
            path.chmod(0o755)


def human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


__all__ = ["export_lab", "ExportResult", "DEFAULT_PYTHONS", "sizes_of", "human"]
