"""The backend contract holds: only `labcoat.backends` knows which engine it drives.

Outside `src/labcoat/backends/` no module imports an engine's SDK, touches an SDK client
(`.client`), names a backend class or module, or compares a backend's name: what differs
between backends is a member or a capability of the `Backend` Protocol.
"""

from __future__ import annotations

import ast
from pathlib import Path

import click
import pytest

from labcoat.backends import BACKENDS, backend_class, get_backend
from labcoat.backends.base import Backend
from labcoat.errors import UsageProblem

SRC = Path(__file__).resolve().parents[2] / "src" / "labcoat"
SDKS = ("docker", "podman")  # engine SDKs: only backends/ may import them
BACKEND_CLASSES = {cls for _, cls, _ in BACKENDS.values()}
BACKEND_MODULES = {module for module, _, _ in BACKENDS.values()}


def _is_backend_name(node: ast.expr) -> bool:
    """`backend.name`, `app.backend.name`, `self._backend.name`, `backend_name`, `app.backend_name`."""
    if isinstance(node, ast.Attribute) and node.attr == "name":
        return "backend" in ast.unparse(node.value).lower()
    text = ast.unparse(node)
    return text.endswith("backend_name")


def violations(source: str, where: str = "<test>") -> list[str]:
    """What in this module reaches past the backend contract, as `where:line: what`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in SDKS:
                    found.append(f"{where}:{line}: imports the {alias.name} SDK")
                if alias.name in BACKEND_MODULES:
                    found.append(f"{where}:{line}: imports the backend module {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in SDKS:
                found.append(f"{where}:{line}: imports from the {node.module} SDK")
            if node.module in BACKEND_MODULES:
                found.append(f"{where}:{line}: imports from the backend module {node.module}")
            if node.module == "labcoat.backends":
                mods = {f"labcoat.backends.{a.name}" for a in node.names}
                if mods & BACKEND_MODULES:
                    found.append(f"{where}:{line}: imports a backend module from labcoat.backends")
            found += [f"{where}:{line}: imports {a.name}" for a in node.names if a.name in BACKEND_CLASSES]
        elif isinstance(node, ast.Attribute) and node.attr == "client" and ast.unparse(node.value) != "http":
            found.append(f"{where}:{line}: touches an SDK client ({ast.unparse(node)})")
        elif isinstance(node, ast.Name) and node.id in BACKEND_CLASSES:
            found.append(f"{where}:{line}: names the backend class {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in BACKEND_CLASSES:
            found.append(f"{where}:{line}: names the backend class {node.attr}")
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_backend_name(s) for s in sides):
                found.append(f"{where}:{line}: compares a backend's name ({ast.unparse(node)})")
    return found


def test_no_module_outside_backends_reaches_past_the_contract() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent)
        if path.is_relative_to(SRC / "backends"):
            continue
        found += violations(path.read_text(), str(rel))
    assert not found, "code outside labcoat/backends/ reaches past the Backend Protocol:\n" + "\n".join(found)


@pytest.mark.parametrize("code", [
    "import docker",
    "from docker.errors import NotFound",
    "def f():\n    import docker.types",
    "backend.client.containers.get('x')",
    "if app.backend.name == 'docker': pass",
    "if 'local' != self._backend.name: pass",
    "ok = app.backend_name != 'docker'",
    "from labcoat.backends.docker import DockerBackend",
    "from labcoat.backends import docker as d",
    "import labcoat.backends.local",
    "assert isinstance(b, LocalBackend)",
    "x = backends_mod.DockerBackend()",
])
def test_the_detector_catches_each_way_past_the_contract(code: str) -> None:
    assert violations(code), code


@pytest.mark.parametrize("code", [
    "import http.client\nc = http.client.HTTPConnection('x')",
    "if backend.is_container: pass",
    "if part.name == 'x': pass",
    "from labcoat.backends import get_backend, DEFAULT_BACKEND",
    "from labcoat.backends.base import Backend, Machine",
])
def test_the_detector_lets_the_contract_through(code: str) -> None:
    assert not violations(code), code


def test_cli_backend_choices_come_from_the_registry() -> None:
    from labcoat.cli import cli

    option = next(p for p in cli.params if p.name == "backend")
    assert isinstance(option.type, click.Choice)
    assert list(option.type.choices) == list(BACKENDS)
    for name in BACKENDS:
        assert name in (option.help or "")


def test_every_registered_backend_implements_the_protocol() -> None:
    members = [m for m in vars(Backend) if not m.startswith("_")]
    for name in BACKENDS:
        cls = backend_class(name)
        assert cls.name == name
        assert Backend in cls.__mro__
        assert isinstance(cls.is_container, bool)
        missing = [m for m in members if not hasattr(cls, m)]
        assert not missing, f"{name} lacks {missing}"


def test_an_unknown_backend_lists_the_valid_ones() -> None:
    with pytest.raises(UsageProblem) as info:
        get_backend("nope")
    assert all(name in str(info.value) for name in BACKENDS)


def test_grading_never_runs_a_script_on_the_host(monkeypatch) -> None:
    """The grading backend follows LABCOAT_BACKEND, but only to a container engine."""
    from labcoat.grading.sandboxes import grading_backend

    monkeypatch.setenv("LABCOAT_BACKEND", "local")
    with pytest.raises(UsageProblem) as info:
        grading_backend()
    assert "container sandboxes only" in info.value.message
    monkeypatch.setenv("LABCOAT_BACKEND", "podman")
    assert grading_backend().name == "podman"  # no engine is contacted until a sandbox starts


def test_preloading_an_unknown_backend_does_nothing() -> None:
    from labcoat.backends import preload

    with pytest.raises(UsageProblem):
        backend_class("nope")
    assert preload("nope") is None  # the warm server must not die of a typo in LABCOAT_BACKEND
