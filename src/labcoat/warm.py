"""A warm `lab check`: a per-user background process that has already imported the heavy parts.

`lab check` is run dozens of times per lab. Its real work is one `docker exec` per part,
but importing pytest, testinfra, the Docker SDK and pydantic costs ~0.6 s every time.
So the first `lab check` also starts `python -m labcoat.warm serve` in the background;
later ones connect to its Unix socket (in the state folder, mode 0600), hand over their
stdin/stdout/stderr file descriptors, argv, environment and working directory, and the
server forks a child that runs the command exactly as the CLI would, writing straight to
the caller's terminal. The child reports its exit code back; Ctrl-C is forwarded to it.

The server exits after 15 idle minutes, and refuses (so the client runs the command
itself and starts a fresh server) when labcoat's own code changed since it started.
`LABCOAT_WARM=0` turns all of this off.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
import time
from pathlib import Path

IDLE_SECONDS = 15 * 60
WARM_COMMANDS = {"check"}
_HERE = Path(__file__).resolve().parent


def enabled() -> bool:
    return os.environ.get("LABCOAT_WARM", "1") != "0"


def socket_path() -> Path:
    from labcoat.paths import state_dir

    return state_dir() / "warm.sock"


def fingerprint() -> str:
    """labcoat's own code as it is on disk: a stale server must not answer."""
    parts = []
    for dirpath, dirnames, filenames in os.walk(_HERE):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".py"):
                st = os.stat(os.path.join(dirpath, name))
                parts.append(f"{dirpath}/{name}:{st.st_size}:{st.st_mtime_ns}")
    import hashlib

    return hashlib.sha256("\n".join([sys.executable, *parts]).encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- client


def run_via_server(argv: list[str]) -> int | None:
    """The command's exit code when a warm server ran it, or None to run it here."""
    if not enabled() or not argv or argv[0] not in WARM_COMMANDS:
        return None
    path = socket_path()
    if not path.exists():
        _spawn_server()
        return None
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(str(path))
    except OSError:
        _spawn_server()
        return None
    request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "fingerprint": fingerprint()})
    with conn:
        socket.send_fds(conn, [struct.pack("!I", len(request)) + request.encode()], [0, 1, 2])
        reader = conn.makefile("r")
        first = json.loads(reader.readline() or "{}")
        if first.get("stale"):
            return None
        child = first.get("pid")
        try:
            last = reader.readline()
        except KeyboardInterrupt:
            if child:
                os.kill(child, signal.SIGINT)
            last = reader.readline()
        if not last:
            return None if child is None else 70
        return int(json.loads(last)["exit"])


def _spawn_server() -> None:
    """Start the server in the background, detached from this terminal and this process group."""
    import subprocess

    subprocess.Popen(
        [sys.executable, "-m", "labcoat.warm", "serve"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True, env=dict(os.environ),
    )


# ----------------------------------------------------------------------------- server


def serve() -> None:
    """Accept `lab` invocations until idle for IDLE_SECONDS; one forked child per invocation."""
    # The point of the server: these imports are paid once, not per `lab check`.
    import labcoat.checking.run
    import labcoat.checking.testinfra_backend  # noqa: F401 - imports testinfra
    import labcoat.cli
    import labcoat.cli.check
    import labcoat.content.catalog
    import labcoat.report.console  # noqa: F401
    import labcoat.runner.session  # noqa: F401
    from labcoat.backends import DEFAULT_BACKEND, preload

    preload(os.environ.get("LABCOAT_BACKEND") or DEFAULT_BACKEND)
    _warm_up_pytest()
    import gc

    gc.freeze()  # what is imported now is shared with every child: no collector work on it there
    mine = fingerprint()
    path = socket_path()
    tmp = path.with_name(f"warm.{os.getpid()}.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        server.bind(str(tmp))
    finally:
        os.umask(old_umask)
    os.replace(tmp, path)
    inode = path.stat().st_ino
    server.listen(8)
    server.settimeout(IDLE_SECONDS)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are never waited for: no zombies
    try:
        while True:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                break
            if not _handle(conn, mine, labcoat.cli.main):
                break
    finally:
        server.close()
        try:
            if path.stat().st_ino == inode:  # a newer server may have taken the path over
                path.unlink()
        except OSError:
            pass


def _warm_up_pytest() -> None:
    """One throwaway pytest run, so pytest's own plugins and machinery are loaded before forking."""
    import contextlib
    import io
    import tempfile

    import pytest

    from labcoat.checking.run import INI

    with tempfile.TemporaryDirectory() as tmp:
        test = Path(tmp) / "test_warm.py"
        test.write_text("def test_warm():\n    assert 1 + 1 == 2\n")
        os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                pytest.main(["-c", str(INI), "--rootdir", tmp, "-q", "--tb=no", "-p", "no:cacheprovider", str(test)])
        finally:
            os.environ.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)


def _handle(conn: socket.socket, mine: str, main: object) -> bool:
    """Serve one invocation; False when this server is stale and should go away."""
    with conn:
        try:
            data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
            size = struct.unpack("!I", data[:4])[0]
            while len(data) - 4 < size:
                more = conn.recv(1 << 20)
                if not more:
                    break
                data += more
            request = json.loads(data[4:4 + size])
        except (OSError, ValueError, struct.error):
            return True
        if request.get("fingerprint") != mine or len(fds) != 3:
            conn.sendall(b'{"stale": true}\n')
            for fd in fds:
                os.close(fd)
            return False
        pid = os.fork()
        if pid == 0:
            _child(conn, fds, request, main)
        for fd in fds:
            os.close(fd)
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    return True


def _child(conn: socket.socket, fds: list[int], request: dict, main: object) -> None:
    """In the forked child: become the caller's `lab` process, then report the exit code."""
    code = 70
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the caller's streams, for the child's life
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        try:
            main(request["argv"])  # type: ignore[operator]
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
        finally:
            os._exit(code)


def stop_server() -> bool:
    """Ask a running server to go away (used by tests): connect with a bad fingerprint."""
    path = socket_path()
    if not path.exists():
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(str(path))
            payload = json.dumps({"fingerprint": "stop", "argv": []}).encode()
            r, w = os.pipe()
            socket.send_fds(conn, [struct.pack("!I", len(payload)) + payload], [r, w, r])
            os.close(r)
            os.close(w)
            conn.recv(64)
    except OSError:
        return False
    deadline = time.monotonic() + 3
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return True


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    elif sys.argv[1:] == ["stop"]:
        stop_server()
    else:
        sys.exit("usage: python -m labcoat.warm serve|stop")
