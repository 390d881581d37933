"""A Docker Engine API proxy that enforces a lab's policy, for untrusted scripts that use `docker`.

Over 500 lines on purpose: the proxy and its policy are one security boundary, easier to review in one place.

`lab grade` runs a submission's host part (a part whose task is the docker CLI) in a
locked-down container whose /var/run/docker.sock is this proxy's socket, never the
engine's. The proxy forwards what the part needs to the real engine and refuses the rest
with an API error the docker CLI prints as it is:

    Error response from daemon: labcoat policy: container creation refused: --privileged

What is allowed (the `Policy` comes from the lab's content, `learner_docker:` on the part):

- creating containers from the lab's own image only, with a memory limit no higher than
  the policy's and memory+swap equal to it, network `none`; never privileged, no added
  capabilities, no bind mounts, volumes, tmpfs or devices, no host PID/IPC/UTS/user
  namespaces, no sysctls, ulimits, cgroup parent, restart policy or negative
  oom_score_adj; at most `max_containers` at a time (and 4x that created in all);
- every container it creates gets the grading session's labcoat.* labels (so the grader
  removes it whatever happens), no new privileges, every capability dropped, a pids and
  a CPU limit and a capped log; its name is prefixed (two gradings never collide), and
  the script keeps using the name it asked for;
- start/stop/kill/wait/attach/logs/inspect/exec/rm of the containers it created, and
  `docker exec`/`docker inspect` of the lab's own sandbox (where answers are recorded);
- nothing about any other container (another student's sandbox): every other name or id
  is refused without asking the engine whether it exists; `docker ps` lists only its own;
- no image pull, build, load, import, push, tag or removal; no volumes, networks, swarm,
  plugins, events, prune or commit; no `docker update` (limits stay as created).

The policy itself (`check_create`, `check_exec`, `route`) works on request bodies alone
and is unit-tested without Docker; `DockerProxy` is the threaded HTTP server around it.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import socketserver
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from labcoat.units import human

L_VIA = "labcoat.via"  # label on every container the proxy created: the session it belongs to
L_NAME = "labcoat.learner-name"  # the name the script asked for
MAX_BODY = 1 << 20
PREFIX = "labcoat policy: "
_VERSION = re.compile(r"^/v\d+(\.\d+)?(?=/)")
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
# Hop-by-hop headers, and those the proxy sets itself when it forwards a request.
_DROP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
         "content-length"}
_RESPONSE_HEADERS = ("content-type", "api-version", "docker-experimental", "ostype", "server", "builder-version")


class Refused(Exception):
    """The policy refuses a request; `message` is what the docker CLI shows."""

    def __init__(self, what: str, reason: str, status: int = 403) -> None:
        self.what, self.reason, self.status = what, reason, status
        super().__init__(f"{PREFIX}{what} refused: {reason}")

    @property
    def message(self) -> str:
        return str(self)


@dataclass(frozen=True)
class Policy:
    """What a script may do with the proxy's `docker` (from the part's `learner_docker:`)."""

    image: str  # the reference containers are created from (the lab image's exact tag)
    image_names: frozenset[str]  # the references a script may write (tag, repo, repo:latest, image id)
    max_memory: int  # bytes; memory+swap must equal memory
    max_containers: int = 2
    pids_limit: int = 64
    cpus: float = 1.0  # what a script may ask for (more is refused)
    # What it gets while graded beside other sandboxes (capacity.cpu_cap): a request within `cpus` is
    # lowered to it, not refused, so the script behaves the same on any grading host. None: as asked.
    cpu_cap: float | None = None
    max_file: int | None = None  # bytes: RLIMIT_FSIZE of every container (the lab's disk limit)

    @property
    def shown_image(self) -> str:
        """The image's name as the instructions give it (repo:latest)."""
        names = sorted(n for n in self.image_names if n.endswith(":latest"))
        return names[0] if names else self.image

    @property
    def max_creates(self) -> int:
        return 4 * self.max_containers


# ----------------------------------------------------------------------------- the policy, on bodies


def _size(n: Any) -> str:
    return human(n) if isinstance(n, int) and n > 0 else str(n)


def check_create(policy: Policy, body: Any, labels: Mapping[str, str]) -> dict[str, Any]:
    """The body to send to the engine for `POST /containers/create`, or Refused listing every problem."""
    what = "container creation"
    if not isinstance(body, dict):
        raise Refused(what, "the request body is not a JSON object", 400)
    problems: list[str] = []
    image = body.get("Image")
    if image not in policy.image_names:
        problems.append(f"image {image!r}: only {policy.shown_image} (the lab's image) may be used")
    hc = body.get("HostConfig") or {}
    if not isinstance(hc, dict):
        raise Refused(what, "HostConfig is not a JSON object", 400)

    def given(key: str) -> bool:
        value = hc.get(key)
        return bool(value) and value not in ({}, [])

    if hc.get("Privileged"):
        problems.append("--privileged")
    if given("CapAdd"):
        problems.append(f"--cap-add {','.join(map(str, hc['CapAdd']))}")
    if given("Binds") or given("Mounts") or given("VolumesFrom") or given("Tmpfs") or body.get("Volumes"):
        problems.append("mounts and volumes (-v, --mount, --volumes-from, --tmpfs): a container gets only its image")
    if given("Devices") or given("DeviceRequests") or given("DeviceCgroupRules"):
        problems.append("devices (--device, --gpus, --device-cgroup-rule)")
    for key, flag in (("PidMode", "--pid"), ("UTSMode", "--uts"), ("UsernsMode", "--userns")):
        if hc.get(key):
            problems.append(f"{flag} {hc[key]}: another namespace than the container's own")
    if hc.get("IpcMode") not in (None, "", "private", "none", "shareable"):
        problems.append(f"--ipc {hc['IpcMode']}: another namespace than the container's own")
    if hc.get("CgroupnsMode") == "host":
        problems.append("--cgroupns host")
    network = hc.get("NetworkMode") or "default"
    if network != "none":
        problems.append(f"network {network!r}: only --network none")
    endpoints = ((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
    if network == "none" and any(name != "none" for name in endpoints):
        problems.append("networks other than none")
    if given("PortBindings") or hc.get("PublishAllPorts") or given("Links"):
        problems.append("published ports and links")
    for opt in hc.get("SecurityOpt") or []:
        if str(opt).split("=")[0].split(":")[0] != "no-new-privileges" or str(opt).endswith(("=false", ":false")):
            problems.append(f"--security-opt {opt}")
    if hc.get("MaskedPaths") is not None or hc.get("ReadonlyPaths") is not None:
        problems.append("--security-opt systempaths=unconfined")
    for key, flag in (("Sysctls", "--sysctl"), ("Ulimits", "--ulimit"), ("CgroupParent", "--cgroup-parent"),
                      ("Cgroup", "a cgroup of another container"), ("VolumeDriver", "--volume-driver"),
                      ("StorageOpt", "--storage-opt")):
        if given(key):
            problems.append(flag)
    if hc.get("Runtime") not in (None, "", "runc"):
        problems.append(f"--runtime {hc['Runtime']}")
    if hc.get("OomKillDisable"):
        problems.append("--oom-kill-disable")
    if isinstance(hc.get("OomScoreAdj"), int) and hc["OomScoreAdj"] < 0:
        problems.append("a negative --oom-score-adj (it would shield the container from the OOM killer)")
    restart = (hc.get("RestartPolicy") or {}).get("Name") or ""
    if restart not in ("", "no"):
        problems.append(f"--restart {restart}")
    memory, swap = hc.get("Memory") or 0, hc.get("MemorySwap") or 0
    if not isinstance(memory, int) or memory <= 0:
        problems.append(f"no memory limit: pass --memory (at most {human(policy.max_memory)}) and --memory-swap "
                        "equal to it")
    elif memory > policy.max_memory:
        problems.append(f"--memory {_size(memory)}: this lab allows at most {human(policy.max_memory)}")
    elif swap != memory:
        shown = "unset" if not swap else ("-1 (unlimited)" if swap == -1 else _size(swap))
        problems.append(f"--memory-swap {shown}: it must equal --memory ({_size(memory)}); Docker's default allows "
                        "twice the limit where the host has swap")
    shm = hc.get("ShmSize") or 0
    if isinstance(shm, int) and shm > policy.max_memory:
        problems.append(f"--shm-size {_size(shm)}")
    nano, quota, period = hc.get("NanoCpus") or 0, hc.get("CpuQuota") or 0, hc.get("CpuPeriod") or 100000
    if nano > policy.cpus * 1e9 or (quota > 0 and quota / period > policy.cpus):
        problems.append(f"more than {policy.cpus:g} CPU(s)")
    if problems:
        raise Refused(what, "; ".join(problems))

    out = dict(body)
    out["Image"] = policy.image
    out["Labels"] = {**{k: v for k, v in (body.get("Labels") or {}).items() if not str(k).startswith("labcoat.")},
                     **labels}
    host = dict(hc)
    host.update({
        "CapDrop": ["ALL"],
        "CapAdd": None,
        "SecurityOpt": ["no-new-privileges"],
        "NetworkMode": "none",
        "LogConfig": {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "1"}},
        "PidsLimit": min(p, policy.pids_limit) if isinstance(p := hc.get("PidsLimit"), int) and p > 0
        else policy.pids_limit,
    })
    if not nano and not quota:
        host["NanoCpus"] = int(policy.cpus * 1e9)
    if policy.cpu_cap:  # never more than the fair share, whatever was asked
        if quota > 0:
            host["CpuQuota"] = min(quota, int(policy.cpu_cap * period))
        else:
            host["NanoCpus"] = min(host.get("NanoCpus") or nano, int(policy.cpu_cap * 1e9))
    if policy.max_file:
        host["Ulimits"] = [{"Name": "fsize", "Soft": policy.max_file, "Hard": policy.max_file}]
    out["HostConfig"] = host
    return out


def check_exec(body: Any) -> None:
    """`POST /containers/X/exec`: the command runs with the container's own privileges only."""
    if not isinstance(body, dict):
        raise Refused("docker exec", "the request body is not a JSON object", 400)
    if body.get("Privileged"):
        raise Refused("docker exec --privileged", "an exec gets the container's own privileges only")


# (method, action) a script may use on a container it created; on the lab's sandbox only inspect and exec.
OWN_ACTIONS = {("GET", "json"), ("GET", "logs"), ("GET", "top"), ("GET", "stats"), ("GET", "changes"),
               ("POST", "start"), ("POST", "stop"), ("POST", "restart"), ("POST", "kill"), ("POST", "pause"),
               ("POST", "unpause"), ("POST", "wait"), ("POST", "attach"), ("POST", "resize"), ("POST", "exec"),
               ("DELETE", "")}
SANDBOX_ACTIONS = {("GET", "json"), ("POST", "exec")}
_WHY_NOT = {
    "update": "`docker update` refused: a container keeps the limits it was created with",
    "rename": "`docker rename` refused: names are how the checks find your container",
    "archive": "`docker cp` refused: not needed for this part",
    "export": "`docker export` refused: not needed for this part",
}


@dataclass(frozen=True)
class Route:
    """What a request is, as far as the path tells: kind and the container/exec/image it names."""

    kind: str  # ping | version | info | list | create | container | exec | image
    ref: str = ""
    action: str = ""


def route(method: str, path: str) -> Route:
    """Classify a request by method and path (API version prefix and query ignored), or Refused."""
    bare = _VERSION.sub("", urlsplit(path).path)
    parts = [unquote(p) for p in bare.strip("/").split("/")] if bare.strip("/") else []
    head = parts[0] if parts else ""
    if method in ("GET", "HEAD") and parts == ["_ping"]:
        return Route("ping")
    if method == "GET" and parts in (["version"], ["info"]):
        return Route(parts[0])
    if head == "containers":
        if method == "GET" and parts == ["containers", "json"]:
            return Route("list")
        if method == "POST" and parts == ["containers", "create"]:
            return Route("create")
        if parts[1:2] == ["prune"]:
            raise Refused("`docker container prune`", "it would reach containers this script did not create")
        if len(parts) in (2, 3):
            action = parts[2] if len(parts) == 3 else ""
            return Route("container", parts[1], action)
    if head == "exec" and len(parts) == 3:
        return Route("exec", parts[1], parts[2])
    if head == "images":
        if parts[1:2] == ["create"]:
            raise Refused("image pull", "the lab's image is already on this host; nothing may be downloaded")
        if parts[1:2] == ["load"]:
            raise Refused("image load", "only the lab's image may be used")
        if method == "GET" and len(parts) >= 3 and parts[-1] == "json":
            return Route("image", "/".join(parts[1:-1]), "json")
        if parts[-1:] == ["push"]:
            raise Refused("image push", "nothing leaves this host")
        if parts[-1:] == ["tag"]:
            raise Refused("image tag", "only the lab's image may be used")
        if method == "DELETE":
            raise Refused("image removal", "images belong to the grader")
        raise Refused("image listing and history", "not needed for this part")
    if head == "build":
        raise Refused("image build", "only the lab's image may be used")
    if head == "commit":
        raise Refused("`docker commit`", "only the lab's image may be used")
    topic = head or "the API root"
    raise Refused(f"{method} /{topic}", f"{topic} is not needed for this part (only containers of the lab's image)")


# ----------------------------------------------------------------------------- the server


def upstream_from_env(where: str | None = None) -> tuple[str, str | tuple[str, int]]:
    """Where the real engine listens: ("unix", path) or ("tcp", (host, port)), from `where` (the backend's
    `api_endpoint()`), else DOCKER_HOST."""
    where = where or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if where.startswith("unix://"):
        return "unix", where.removeprefix("unix://")
    if where.startswith("tcp://"):
        host, _, port = where.removeprefix("tcp://").rstrip("/").rpartition(":")
        return "tcp", (host, int(port or 2375))
    raise ValueError(f"DOCKER_HOST={where}: the grading proxy reaches only unix:// or tcp:// engines")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


@dataclass
class Own:
    """A container the proxy created: its id, the name the script asked for, its real name."""

    id: str
    name: str | None
    real: str | None


@dataclass
class DockerProxy:
    """The policy-enforcing proxy on a Unix socket of its own (start, then give `socket_path` to the script).

    labels: put on every container it creates (the grading session's), plus labcoat.via.
    prefix: prepended to the names the script asks for (so concurrent gradings never collide).
    sandboxes: name or id -> container id of the lab sandboxes the script may exec into.
    """

    policy: Policy
    labels: Mapping[str, str]
    prefix: str
    sandboxes: Mapping[str, str] = field(default_factory=dict)
    upstream: tuple[str, Any] = field(default_factory=upstream_from_env)
    timeout: float = 600.0
    own: dict[str, Own] = field(default_factory=dict)
    execs: set[str] = field(default_factory=set)
    refusals: list[str] = field(default_factory=list)  # what the policy refused
    unknown: list[str] = field(default_factory=list)  # look-ups of containers the script did not create
    creates: int = 0
    _server: Any = None
    _dir: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def via(self) -> dict[str, str]:
        return {L_VIA: self.labels.get("labcoat.session", "") or self.prefix}

    @property
    def socket_path(self) -> str:
        return os.path.join(self._dir, "docker.sock")

    # ------------------------------------------------------------------ life

    def start(self) -> DockerProxy:
        self._dir = tempfile.mkdtemp(prefix="labcoat-proxy-")
        os.chmod(self._dir, 0o711)
        server = _Server(self.socket_path, _Handler)
        server.proxy = self
        # The script's root has no capabilities (no CAP_DAC_OVERRIDE): when the grader is not root, the
        # socket must be open to others; its folder (0711, a random name) is not listable.
        os.chmod(self.socket_path, 0o660 if os.geteuid() == 0 else 0o666)
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                         name="labcoat-dockerproxy").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> DockerProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def names(self) -> dict[str, str]:
        """Name the script asked for -> the container's id (for the checks, which look names up)."""
        return {o.name: o.id for o in self.own.values() if o.name}

    # ------------------------------------------------------------------ the engine

    def connection(self) -> http.client.HTTPConnection:
        kind, where = self.upstream
        if kind == "unix":
            return _UnixConnection(where, self.timeout)
        return http.client.HTTPConnection(where[0], where[1], timeout=self.timeout)

    def raw_socket(self) -> socket.socket:
        kind, where = self.upstream
        if kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(where)
            return sock
        return socket.create_connection(where)

    def call(self, method: str, path: str, body: bytes | None = None,
             headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request to the engine, read whole."""
        conn = self.connection()
        try:
            hdrs = {k: v for k, v in (headers or {}).items() if k.lower() not in _DROP and k.lower() != "host"}
            if body is not None:
                hdrs["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def live_count(self) -> int:
        filters = json.dumps({"label": [f"{k}={v}" for k, v in self.via.items()]})
        status, _, data = self.call("GET", "/containers/json?" + urlencode({"all": "1", "filters": filters}))
        if status != 200:
            raise Refused("container creation", f"the engine could not count containers (HTTP {status})", 500)
        return len(json.loads(data))

    # ------------------------------------------------------------------ decisions

    def resolve(self, ref: str, what: str) -> tuple[str, str]:
        """("own" | "sandbox", container id) for a reference the script may use, else Refused."""
        ref = ref.lstrip("/")
        for own in self.own.values():
            if ref in (own.id, own.name, own.real):
                return "own", own.id
        if ref in self.sandboxes:
            return "sandbox", self.sandboxes[ref]
        if len(ref) >= 4 and re.fullmatch(r"[0-9a-f]+", ref):
            hits = [o.id for o in self.own.values() if o.id.startswith(ref)]
            if len(hits) == 1:
                return "own", hits[0]
        # 404, as the engine says for a name it does not know (`docker rm -f` of a missing name stays
        # quiet); the engine is never asked, so nothing tells whether such a container exists.
        raise Refused(what, f"No such container: {ref} (only containers this script created, and the lab's "
                      "sandbox for `docker exec`, are reachable)", 404)


@dataclass
class _Plan:
    path: str
    body: bytes | None
    buffered: bool = False
    after: Any = None  # callable(status, data) -> data, for buffered requests


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = False
    proxy: DockerProxy


_ACTION_WORDS = {"json": "docker inspect", "exec": "docker exec", "": "docker rm", "logs": "docker logs",
                 "start": "docker start", "stop": "docker stop", "kill": "docker kill", "wait": "docker wait",
                 "attach": "docker attach", "top": "docker top", "stats": "docker stats"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def address_string(self) -> str:  # a Unix socket's peer has no address
        return "script"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    # ------------------------------------------------------------------ one request

    def _handle(self) -> None:
        proxy = self.server.proxy
        try:
            body = self._read_body()
            plan = self._decide(proxy, body)
        except Refused as exc:
            with proxy._lock:
                (proxy.unknown if exc.status == 404 else proxy.refusals).append(exc.message)
            self._reply(exc.status, json.dumps({"message": exc.message}).encode(), "application/json")
            return
        if plan is None:
            return
        try:
            if plan.buffered:
                status, headers, data = proxy.call(self.command, plan.path, plan.body, self.headers)
                if plan.after:
                    data = plan.after(status, data)
                self._reply(status, data, headers.get("content-type", "application/json"), headers)
            else:
                self._tunnel(proxy, plan)
        except OSError as exc:
            message = f"{PREFIX}the Docker engine did not answer the proxy: {exc}"
            with contextlib.suppress(OSError):
                self._reply(502, json.dumps({"message": message}).encode(), "application/json")
            self.close_connection = True

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                if len(data) + size > MAX_BODY:
                    self.close_connection = True
                    raise Refused("a request", f"its body is larger than {MAX_BODY} bytes", 413)
                data += self.rfile.read(size)
                self.rfile.readline()
            return bytes(data)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            raise Refused("a request", f"its body is larger than {MAX_BODY} bytes", 413)
        return self.rfile.read(length) if length else None

    def _decide(self, proxy: DockerProxy, body: bytes | None) -> _Plan | None:
        method, path = self.command, self.path
        r = route(method, path)
        split = urlsplit(path)
        if r.kind in ("ping", "version", "info"):
            return _Plan(path, body)
        if r.kind == "list":
            query = dict(parse_qsl(split.query))
            try:
                filters = json.loads(query.get("filters") or "{}")
            except ValueError:
                raise Refused("docker ps", "its filters are not JSON", 400) from None
            labels = filters.setdefault("label", {}) if isinstance(filters, dict) else None
            mine = [f"{k}={v}" for k, v in proxy.via.items()]
            if isinstance(labels, dict):
                labels.update({m: True for m in mine})
            elif isinstance(labels, list):
                labels.extend(mine)
            else:
                raise Refused("docker ps", "its filters have an unknown shape", 400)
            query["filters"] = json.dumps(filters)
            return _Plan(f"{split.path}?{urlencode(query)}", body)
        if r.kind == "create":
            return self._create(proxy, split, body)
        if r.kind == "container":
            word = _ACTION_WORDS.get(r.action, f"docker {r.action}")
            kind, cid = proxy.resolve(r.ref, word)
            allowed = OWN_ACTIONS if kind == "own" else SANDBOX_ACTIONS
            if (method, r.action) not in allowed:
                if r.action in _WHY_NOT and kind == "own":
                    what, _, reason = _WHY_NOT[r.action].partition(" refused: ")
                    raise Refused(what, reason)
                raise Refused(word, "the lab's sandbox only takes `docker exec` and `docker inspect`"
                              if kind == "sandbox" else "not needed for this part")
            new_path = re.sub(r"(/containers/)[^/?]+", lambda m: m.group(1) + quote(cid), split.path, count=1)
            new_path += f"?{split.query}" if split.query else ""
            if r.action == "exec":
                check_exec(_json(body, "docker exec"))

                def remember(status: int, data: bytes) -> bytes:
                    if status == 201:
                        with contextlib.suppress(ValueError, KeyError, TypeError), proxy._lock:
                            proxy.execs.add(json.loads(data)["Id"])
                    return data

                return _Plan(new_path, body, buffered=True, after=remember)
            if method == "DELETE":
                def forget(status: int, data: bytes) -> bytes:
                    if status in (200, 204):
                        with proxy._lock:
                            proxy.own.pop(cid, None)
                    return data

                return _Plan(new_path, body, buffered=True, after=forget)
            return _Plan(new_path, body)
        if r.kind == "exec":
            if r.ref not in proxy.execs or r.action not in ("start", "resize", "json"):
                raise Refused("docker exec", "not an exec this script created")
            return _Plan(path, body)
        if r.kind == "image":
            if r.ref not in proxy.policy.image_names:
                raise Refused("image inspection", f"only {proxy.policy.shown_image} may be used")
            return _Plan(path, body)
        raise Refused(f"{method} {split.path}", "not needed for this part")  # pragma: no cover - route() covers all

    def _create(self, proxy: DockerProxy, split: Any, body: bytes | None) -> None:
        """Check, label and rename a creation, send it, answer the script (already answered: None)."""
        query = dict(parse_qsl(split.query))
        name = (query.get("name") or "").lstrip("/") or None
        if name is not None and not _NAME.match(name):
            raise Refused("container creation", f"the name {name!r} is not a valid container name", 400)
        labels = {**proxy.labels, **proxy.via, L_NAME: name or ""}
        payload = check_create(proxy.policy, _json(body, "container creation"), labels)
        # One creation at a time: the cap on containers must hold against scripts that create in parallel.
        proxy._lock.acquire()
        try:
            if proxy.creates >= proxy.policy.max_creates:
                raise Refused("container creation", f"this script already created {proxy.creates} containers "
                              f"(at most {proxy.policy.max_creates} per grading)")
            live = proxy.live_count()
            if live >= proxy.policy.max_containers:
                raise Refused("container creation", f"at most {proxy.policy.max_containers} containers at a time "
                              f"({live} exist: `docker rm -f` one first)")
            real = f"{proxy.prefix}-{name}" if name else None
            if real:
                query["name"] = real
            path = split.path + (f"?{urlencode(query)}" if query else "")
            status, headers, data = proxy.call("POST", path, json.dumps(payload).encode(), self.headers)
            if status == 201:
                proxy.creates += 1
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    cid = json.loads(data)["Id"]
                    proxy.own[cid] = Own(cid, name, real)
        finally:
            proxy._lock.release()
        if status == 409 and real:  # the engine names the real container: say it with the script's name
            data = data.replace(real.encode(), (name or "").encode())
        self._reply(status, data, headers.get("content-type", "application/json"), headers)
        return None

    # ------------------------------------------------------------------ answers

    def _reply(self, status: int, data: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        for key in _RESPONSE_HEADERS:
            if headers and key in headers and key != "content-type":
                self.send_header(key, headers[key])
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _tunnel(self, proxy: DockerProxy, plan: _Plan) -> None:
        """Forward as raw bytes both ways (streams, chunked answers and hijacked exec/attach connections).

        The engine is asked to close after this one answer: the client's next request comes
        back through the proxy on a new connection, never straight down this one.
        """
        upgrade = "upgrade" in (self.headers.get("Connection") or "").lower()
        lines = [f"{self.command} {plan.path} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in self.headers.items() if k.lower() not in _DROP]
        if plan.body is not None:
            lines.append(f"Content-Length: {len(plan.body)}")
        lines += ["Connection: Upgrade", "Upgrade: tcp"] if upgrade else ["Connection: close"]
        upstream = proxy.raw_socket()
        self.close_connection = True
        try:
            upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (plan.body or b""))
            if upgrade:
                threading.Thread(target=self._pump_in, args=(upstream,), daemon=True).start()
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                self.wfile.write(data)
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_WR)
        finally:
            upstream.close()

    def _pump_in(self, upstream: socket.socket) -> None:
        """Client to engine, for a hijacked connection (stdin of docker exec -i)."""
        with contextlib.suppress(OSError, ValueError):
            while True:
                data = self.rfile.read1(65536)
                if not data:
                    upstream.shutdown(socket.SHUT_WR)
                    return
                upstream.sendall(data)


def _json(body: bytes | None, what: str) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise Refused(what, "the request body is not JSON", 400) from None
