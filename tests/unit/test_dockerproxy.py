"""The grading proxy's policy on request bodies and paths, and the proxy against a fake engine (no Docker)."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import socketserver
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from labcoat.dockerproxy import L_VIA, DockerProxy, Policy, Refused, check_create, check_exec, route

TAG = "labcoat/sandbox:d2a7cee86e8a"
POLICY = Policy(TAG, frozenset({TAG, "labcoat/sandbox", "labcoat/sandbox:latest", "sha256:cb30"}), 128 << 20,
                max_containers=2, pids_limit=64, cpus=1.0)
LABELS = {"labcoat.managed": "1", "labcoat.kind": "grade", "labcoat.session": "s1", "labcoat.owner": "t"}
MiB = 1 << 20


def body(**host: object) -> dict:
    """What `docker run -d --name x --memory 96m --memory-swap 96m --network none IMAGE sleep infinity` sends."""
    hc = {"Memory": 96 * MiB, "MemorySwap": 96 * MiB, "NetworkMode": "none", "Binds": None, "CapAdd": None,
          "Privileged": False, "PidMode": "", "IpcMode": "", "UTSMode": "", "RestartPolicy": {"Name": "no"}}
    hc.update(host)
    return {"Image": "labcoat/sandbox:latest", "Cmd": ["sleep", "infinity"], "HostConfig": hc, "Labels": {}}


def refusal(b: dict) -> str:
    with pytest.raises(Refused) as info:
        check_create(POLICY, b, LABELS)
    return info.value.message


# ----------------------------------------------------------------------------- creating containers


def test_the_parts_own_command_is_allowed_and_locked_down() -> None:
    b = body()
    b["Labels"] = {"mine": "1", "labcoat.owner": "someone-else", "labcoat.kind": "lab"}
    out = check_create(POLICY, b, LABELS)
    hc = out["HostConfig"]
    assert out["Image"] == TAG
    assert out["Labels"] == {"mine": "1", **LABELS}  # a script cannot pass its container off as another's
    assert hc["CapDrop"] == ["ALL"] and hc["SecurityOpt"] == ["no-new-privileges"] and hc["NetworkMode"] == "none"
    assert hc["PidsLimit"] == 64 and hc["NanoCpus"] == 10**9
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m", "max-file": "1"}}
    assert hc["Memory"] == hc["MemorySwap"] == 96 * MiB


def test_a_lower_pids_limit_is_kept_a_higher_one_capped() -> None:
    assert check_create(POLICY, body(PidsLimit=10), LABELS)["HostConfig"]["PidsLimit"] == 10
    assert check_create(POLICY, body(PidsLimit=100000), LABELS)["HostConfig"]["PidsLimit"] == 64
    assert check_create(POLICY, body(PidsLimit=-1), LABELS)["HostConfig"]["PidsLimit"] == 64


@pytest.mark.parametrize(("host", "words"), [
    ({"Privileged": True}, "--privileged"),
    ({"Binds": ["/:/host"]}, "mounts and volumes"),
    ({"Mounts": [{"Type": "bind", "Source": "/", "Target": "/host"}]}, "mounts and volumes"),
    ({"Tmpfs": {"/x": ""}}, "mounts and volumes"),
    ({"VolumesFrom": ["other"]}, "mounts and volumes"),
    ({"Devices": [{"PathOnHost": "/dev/mem"}]}, "devices"),
    ({"DeviceRequests": [{"Count": -1}]}, "devices"),
    ({"PidMode": "host"}, "--pid host"),
    ({"PidMode": "container:victim"}, "--pid container:victim"),
    ({"IpcMode": "host"}, "--ipc host"),
    ({"UTSMode": "host"}, "--uts host"),
    ({"UsernsMode": "host"}, "--userns host"),
    ({"CgroupnsMode": "host"}, "--cgroupns host"),
    ({"NetworkMode": "host"}, "only --network none"),
    ({"NetworkMode": "default"}, "only --network none"),
    ({"NetworkMode": "container:victim"}, "only --network none"),
    ({"CapAdd": ["SYS_ADMIN"]}, "--cap-add SYS_ADMIN"),
    ({"SecurityOpt": ["seccomp=unconfined"]}, "--security-opt seccomp=unconfined"),
    ({"SecurityOpt": ["apparmor=unconfined"]}, "--security-opt apparmor=unconfined"),
    ({"MaskedPaths": [], "ReadonlyPaths": []}, "systempaths=unconfined"),
    ({"Sysctls": {"kernel.shmmax": "1"}}, "--sysctl"),
    ({"Ulimits": [{"Name": "nofile", "Soft": 1 << 20, "Hard": 1 << 20}]}, "--ulimit"),
    ({"CgroupParent": "/"}, "--cgroup-parent"),
    ({"Cgroup": "container:victim"}, "a cgroup of another container"),
    ({"VolumeDriver": "local"}, "--volume-driver"),
    ({"Runtime": "runsc"}, "--runtime runsc"),
    ({"OomKillDisable": True}, "--oom-kill-disable"),
    ({"OomScoreAdj": -1000}, "negative --oom-score-adj"),
    ({"RestartPolicy": {"Name": "always"}}, "--restart always"),
    ({"PortBindings": {"80/tcp": [{"HostPort": "80"}]}}, "published ports"),
    ({"Memory": 0, "MemorySwap": 0}, "no memory limit"),
    ({"Memory": 1 << 30, "MemorySwap": 1 << 30}, "at most 128.0 MiB"),
    ({"Memory": 96 * MiB, "MemorySwap": 0}, "--memory-swap unset: it must equal --memory"),
    ({"Memory": 96 * MiB, "MemorySwap": -1}, "--memory-swap -1 (unlimited)"),
    ({"Memory": 96 * MiB, "MemorySwap": 192 * MiB}, "--memory-swap 192.0 MiB"),
    ({"NanoCpus": 2 * 10**9}, "more than 1 CPU"),
    ({"CpuQuota": 400000, "CpuPeriod": 100000}, "more than 1 CPU"),
    ({"ShmSize": 1 << 30}, "--shm-size"),
])
def test_every_escape_is_refused_with_its_reason(host: dict, words: str) -> None:
    message = refusal(body(**host))
    assert message.startswith("labcoat policy: container creation refused: ")
    assert words in message, message


def test_another_image_is_refused_whatever_its_name() -> None:
    for image in ("alpine", "ubuntu:latest", "labcoat/sandbox:evil", "docker.io/library/busybox", None):
        b = body()
        b["Image"] = image
        assert "only labcoat/sandbox:latest (the lab's image)" in refusal(b)
    b = body()
    b["Image"] = "sha256:cb30"  # the lab image by id is the lab image
    assert check_create(POLICY, b, LABELS)["Image"] == TAG


def test_an_anonymous_volume_of_the_request_is_refused() -> None:
    b = body()
    b["Volumes"] = {"/data": {}}
    assert "mounts and volumes" in refusal(b)


def test_every_problem_is_named_at_once() -> None:
    message = refusal(body(Privileged=True, Binds=["/:/host"], PidMode="host", Memory=1 << 30, MemorySwap=1 << 30))
    assert all(w in message for w in ("--privileged", "mounts", "--pid host", "at most 128.0 MiB")), message


def test_a_body_that_is_not_an_object_is_a_bad_request() -> None:
    for bad in (None, [], "x", 3):
        with pytest.raises(Refused) as info:
            check_create(POLICY, bad, LABELS)
        assert info.value.status == 400


def test_exec_runs_with_the_containers_own_privileges_only() -> None:
    check_exec({"Cmd": ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"], "Privileged": False})
    with pytest.raises(Refused, match="docker exec --privileged refused"):
        check_exec({"Cmd": ["sh"], "Privileged": True})


# ----------------------------------------------------------------------------- which endpoints


@pytest.mark.parametrize(("method", "path", "words"), [
    ("POST", "/v1.41/images/create?fromImage=alpine&tag=latest", "image pull refused"),
    ("POST", "/v1.41/build?t=x", "image build refused"),
    ("POST", "/v1.41/images/load", "image load refused"),
    ("POST", "/v1.41/images/labcoat/sandbox/push", "image push refused"),
    ("POST", "/v1.41/images/labcoat/sandbox:latest/tag?repo=x", "image tag refused"),
    ("DELETE", "/v1.41/images/labcoat/sandbox:latest", "image removal refused"),
    ("GET", "/v1.41/images/json", "image listing"),
    ("POST", "/v1.41/containers/prune", "prune` refused"),
    ("POST", "/v1.41/commit?container=x", "commit` refused"),
    ("GET", "/v1.41/volumes", "volumes is not needed"),
    ("POST", "/v1.41/volumes/create", "volumes is not needed"),
    ("GET", "/v1.41/networks", "networks is not needed"),
    ("POST", "/v1.41/swarm/init", "swarm is not needed"),
    ("GET", "/v1.41/events", "events is not needed"),
    ("POST", "/v1.41/plugins/pull", "plugins is not needed"),
    ("GET", "/v1.41/system/df", "system is not needed"),
    ("POST", "/session", "session is not needed"),
])
def test_endpoints_the_part_does_not_need_are_refused(method: str, path: str, words: str) -> None:
    with pytest.raises(Refused) as info:
        route(method, path)
    assert info.value.message.startswith("labcoat policy: ") and words in info.value.message


@pytest.mark.parametrize(("method", "path", "kind", "ref", "action"), [
    ("HEAD", "/_ping", "ping", "", ""),
    ("GET", "/v1.41/version", "version", "", ""),
    ("GET", "/v1.41/containers/json?all=1", "list", "", ""),
    ("POST", "/v1.41/containers/create?name=x", "create", "", ""),
    ("POST", "/v1.41/containers/lab53-part5/exec", "container", "lab53-part5", "exec"),
    ("DELETE", "/v1.41/containers/lab53-part5?force=1", "container", "lab53-part5", ""),
    ("POST", "/v1.41/exec/abc/start", "exec", "abc", "start"),
    ("GET", "/v1.41/images/labcoat/sandbox:latest/json", "image", "labcoat/sandbox:latest", "json"),
])
def test_what_the_part_needs_is_routed(method: str, path: str, kind: str, ref: str, action: str) -> None:
    r = route(method, path)
    assert (r.kind, r.ref, r.action) == (kind, ref, action)


# ----------------------------------------------------------------------------- the proxy, on a fake engine


class FakeEngine:
    """Records every request that reaches 'the engine' and answers like Docker would, in memory."""

    def __init__(self, path: str) -> None:
        self.requests: list[tuple[str, str, dict]] = []
        self.containers: dict[str, dict] = {}
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def address_string(self) -> str:
                return "fake"

            def log_message(self, *args: object) -> None:
                pass

            def do_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = json.loads(self.rfile.read(length) or b"null") if length else None
                split = urlsplit(self.path)
                query = dict(parse_qsl(split.query))
                engine.requests.append((self.command, self.path, data))
                status, answer = engine.answer(self.command, split.path, query, data)
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_DELETE = do_HEAD = do_any

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a client that hung up early

        self.server = Server(path, Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, method: str, path: str, query: dict, data: object) -> tuple[int, object]:
        path = path.removeprefix("/v1.41")
        if path == "/containers/create":
            cid = f"{len(self.containers) + 1:064x}"
            self.containers[cid] = {"Id": cid, "Name": query.get("name"), "Labels": data["Labels"]}
            return 201, {"Id": cid, "Warnings": []}
        if path == "/containers/json":
            wanted = json.loads(query.get("filters", "{}")).get("label", [])
            wanted = list(wanted)
            mine = [c for c in self.containers.values()
                    if all(c["Labels"].get(w.split("=")[0]) == w.split("=", 1)[1] for w in wanted)]
            return 200, mine
        if path.endswith("/exec"):
            return 201, {"Id": "e" * 64}
        if method == "DELETE":
            self.containers.pop(path.rsplit("/", 1)[1], None)
            return 204, {}
        return 200, {"ok": path}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Client:
    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, method: str, url: str, payload: object = None) -> tuple[int, object]:
        conn = http.client.HTTPConnection("localhost", timeout=10)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.path)
        conn.sock = sock
        raw = json.dumps(payload).encode() if payload is not None else None
        conn.request(method, url, body=raw, headers={"Content-Type": "application/json"} if raw else {})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp.status, json.loads(data) if data else None


@pytest.fixture
def proxied() -> Iterator[tuple[DockerProxy, FakeEngine, Client]]:
    folder = tempfile.mkdtemp(prefix="labcoat-fake-engine-")
    engine = FakeEngine(os.path.join(folder, "engine.sock"))
    proxy = DockerProxy(POLICY, LABELS, prefix="labcoat-grade-s1", sandboxes={"labcoat-main": "m" * 64},
                        upstream=("unix", os.path.join(folder, "engine.sock"))).start()
    try:
        yield proxy, engine, Client(proxy.socket_path)
    finally:
        proxy.stop()
        engine.close()
        with contextlib.suppress(OSError):
            os.remove(os.path.join(folder, "engine.sock"))
            os.rmdir(folder)


def test_a_created_container_is_labelled_renamed_and_found_by_its_asked_name(proxied) -> None:  # noqa: ANN001
    proxy, engine, call = proxied
    status, answer = call("POST", "/v1.41/containers/create?name=lab53-part5", body())
    assert status == 201
    method, path, sent = engine.requests[-1]
    assert "name=labcoat-grade-s1-lab53-part5" in path
    assert sent["Labels"]["labcoat.session"] == "s1" and sent["Labels"][L_VIA] == "s1"
    assert sent["HostConfig"]["CapDrop"] == ["ALL"]
    assert proxy.names() == {"lab53-part5": answer["Id"]}
    status, _ = call("POST", "/v1.41/containers/lab53-part5/exec", {"Cmd": ["true"]})
    assert status == 201
    assert engine.requests[-1][1] == f"/v1.41/containers/{answer['Id']}/exec"  # the engine sees the id, not a name


def test_a_refused_creation_never_reaches_the_engine(proxied) -> None:  # noqa: ANN001
    proxy, engine, call = proxied
    status, answer = call("POST", "/v1.41/containers/create", body(Privileged=True, Binds=["/:/host"]))
    assert status == 403 and answer["message"].startswith("labcoat policy: container creation refused: --privileged")
    assert not [r for r in engine.requests if r[1].startswith("/v1.41/containers/create")]
    assert proxy.refusals == [answer["message"]]


def test_a_foreign_container_is_never_looked_up(proxied) -> None:  # noqa: ANN001
    proxy, engine, call = proxied
    for method, url, payload in (("POST", "/v1.41/containers/other-students-sandbox/exec", {"Cmd": ["sh"]}),
                                 ("GET", "/v1.41/containers/other-students-sandbox/json", None),
                                 ("POST", "/v1.41/containers/other-students-sandbox/stop", None),
                                 ("DELETE", "/v1.41/containers/other-students-sandbox?force=1", None)):
        status, answer = call(method, url, payload)
        assert status == 404 and "No such container: other-students-sandbox" in answer["message"]
    assert engine.requests == []  # not even asked whether it exists


def test_the_lab_sandbox_takes_exec_and_inspect_only(proxied) -> None:  # noqa: ANN001
    proxy, engine, call = proxied
    assert call("POST", "/v1.41/containers/labcoat-main/exec", {"Cmd": ["answer", "part5", "k", "v"]})[0] == 201
    assert call("GET", "/v1.41/containers/labcoat-main/json")[0] == 200
    for method, url in (("POST", "/v1.41/containers/labcoat-main/stop"), ("DELETE", "/v1.41/containers/labcoat-main"),
                        ("POST", "/v1.41/containers/labcoat-main/kill")):
        status, answer = call(method, url)
        assert status == 403 and "only takes `docker exec` and `docker inspect`" in answer["message"]
    status, answer = call("POST", "/v1.41/containers/labcoat-main/exec", {"Cmd": ["sh"], "Privileged": True})
    assert status == 403


def test_only_execs_it_created_can_be_started(proxied) -> None:  # noqa: ANN001
    proxy, engine, call = proxied
    status, answer = call("POST", "/v1.41/exec/" + "f" * 64 + "/start", {"Detach": True})
    assert status == 403 and "not an exec this script created" in answer["message"]
    call("POST", "/v1.41/containers/labcoat-main/exec", {"Cmd": ["true"]})
    assert call("GET", "/v1.41/exec/" + "e" * 64 + "/json")[0] == 200


def test_the_number_of_containers_is_capped(proxied) -> None:  # noqa: ANN001
    proxy, engine, call = proxied
    ids = [call("POST", "/v1.41/containers/create", body())[1]["Id"] for _ in range(2)]
    status, answer = call("POST", "/v1.41/containers/create", body())
    assert status == 403 and "at most 2 containers at a time (2 exist" in answer["message"]
    for cid in ids:  # removing makes room, up to 4x the cap in all
        assert call("DELETE", f"/v1.41/containers/{cid}?force=1")[0] == 204
    for _ in range(6):
        status, answer = call("POST", "/v1.41/containers/create", body())
        assert status == 201
        assert call("DELETE", f"/v1.41/containers/{answer['Id']}?force=1")[0] == 204
    status, answer = call("POST", "/v1.41/containers/create", body())
    assert status == 403 and "already created 8 containers" in answer["message"]


def test_docker_ps_lists_only_its_own(proxied) -> None:  # noqa: ANN001
    proxy, engine, call = proxied
    call("GET", "/v1.41/containers/json?" + urlencode({"all": "1", "filters": json.dumps({"label": {"x=1": True}})}))
    sent = dict(parse_qsl(urlsplit(engine.requests[-1][1]).query))
    assert json.loads(sent["filters"])["label"] == {"x=1": True, f"{L_VIA}=s1": True}


# ----------------------------------------------------------------------------- the checks' look-ups


def test_graded_checks_see_only_the_containers_the_proxy_created() -> None:
    """A container of the same name elsewhere on the host (the grader's own lab53-part5) never counts."""
    from labcoat.checking.run import LearnerContainers

    asked: list[str] = []

    class Backend:
        name = "docker"

        def inspect_named(self, name: str) -> dict:
            asked.append(name)
            return {"Id": name, "State": {"Running": True}}

    graded = LearnerContainers(Backend(), {"lab53-part5": "c" * 64})
    assert graded.inspect("lab53-part5")["Id"] == "c" * 64
    assert graded.inspect("something-else") is None
    assert asked == ["c" * 64]
    assert LearnerContainers(Backend()).inspect("lab53-part5")["Id"] == "lab53-part5"  # `lab check`: the host's
