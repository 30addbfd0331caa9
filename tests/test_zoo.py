"""The model zoo: registry facts, and downloads against a local HTTP server on 127.0.0.1.

The server (a thread in this process) serves bytes the test makes, answers ``Range`` requests,
redirects, cuts a connection after K bytes once, sleeps, or answers 404; it logs every request.
Nothing here talks to any other address.
"""
import hashlib
import importlib.metadata
import json
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from facelab import labels as L
from facelab import zoo
from facelab.apps.cli import main
from facelab.errors import InvalidInputError, ModelDownloadError

DATA = bytes(range(256)) * 40 + b"end"  # 10243 bytes
SHA = hashlib.sha256(DATA).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        state = self.server.state
        record = {"path": self.path, "range": self.headers.get("Range"), "sent": 0}
        state.log.append(record)
        if self.path in state.redirects:
            record["status"] = 302
            self.send_response(302)
            self.send_header("Location", state.redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        time.sleep(state.slow.get(self.path, 0))
        data = state.files.get(self.path)
        if data is None:
            record["status"] = 404
            self.send_error(404)
            return
        start, wanted = 0, re.fullmatch(r"bytes=(\d+)-", record["range"] or "")
        if wanted and state.ranges:
            start = int(wanted[1])
            if start >= len(data):
                record["status"] = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))  # the whole rest, even when the cut comes
        self.end_headers()
        body = body[:state.cut_once.pop(self.path, len(body))]
        record.update(status=206 if start else 200, sent=len(body))  # before the client can see the bytes
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that gave up (timeout test) makes the late answer fail; that is expected


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 (port 0) in a thread, with what it serves as plain dicts."""

    def __init__(self):
        self.files, self.redirects, self.cut_once, self.slow, self.log = {}, {}, {}, {}, []
        self.ranges = True
        self.httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self.httpd.state = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = LocalServer()
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A fresh FACELAB_HOME, no mirror, no proxy, short timeouts."""
    monkeypatch.setenv("FACELAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(zoo.MIRROR_ENV, raising=False)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setattr(zoo, "TIMEOUT", 2.0)
    return tmp_path / "home"


def dead_url(path="/tiny_net.pt"):
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def entry(url, name="tiny_net", **kw):
    return zoo.ZooModel(name=name, tasks=("emotion",), architecture="tf_efficientnet_b0", file_format=zoo.PICKLED,
                        file=f"{name}.pt", url=url, image_size=224, mean=L.IMAGENET_MEAN, std=L.IMAGENET_STD,
                        labels=L.EMOTIONS_8, licence="test", source="test", trained_on="test", **kw)


def manifest(path):
    return json.loads(path.with_name(path.name + ".json").read_text())


# --- downloading ------------------------------------------------------------------------
def test_download_follows_redirect_shows_progress_and_writes_manifest(server, home, capsys):
    server.files["/lfs/tiny_net.pt"] = DATA
    server.redirects["/blob/tiny_net.pt?raw=true"] = server.url + "/lfs/tiny_net.pt"
    model = entry(server.url + "/blob/tiny_net.pt?raw=true")
    path = zoo.download(model)
    assert path == home / "zoo" / "downloads" / "tiny_net.pt" and path.read_bytes() == DATA
    assert [(r["path"], r["status"]) for r in server.log] == [("/blob/tiny_net.pt?raw=true", 302),
                                                               ("/lfs/tiny_net.pt", 200)]
    err = capsys.readouterr().err
    assert "tiny_net.pt" in err and "100%" in err and "10.0k" in err  # tqdm: 10243 B = 10.0 kB (1024-based)
    info = manifest(path)
    assert (info["name"], info["url"], info["sha256"], info["size"], info["placed_by_hand"]) == (
        "tiny_net", model.url, SHA, len(DATA), False)
    assert abs((datetime.now(timezone.utc) - datetime.fromisoformat(info["downloaded"])).total_seconds()) < 60
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny_net.pt", "tiny_net.pt.json"]

    assert zoo.download(model) == path and len(server.log) == 2  # present and checked: no request
    assert zoo.cached(model) == path and zoo.verify(model) == path
    assert zoo.download(model, progress=False, force=True).read_bytes() == DATA and len(server.log) == 4
    assert capsys.readouterr().err == ""


def test_resume_after_the_connection_is_cut(server, home):
    server.files["/f/tiny_net.pt"] = DATA
    server.cut_once["/f/tiny_net.pt"] = 3000
    server.redirects["/r"] = server.url + "/f/tiny_net.pt"
    model = entry(server.url + "/r", size=len(DATA), sha256=SHA)
    with pytest.raises(ModelDownloadError, match="ended after 3000 of 10243 bytes"):
        zoo.download(model, progress=False)
    path = zoo.local_path(model)
    part = path.with_name("tiny_net.pt.part")
    assert not path.exists() and part.read_bytes() == DATA[:3000]
    assert zoo.download(model, progress=False).read_bytes() == DATA
    assert [(r["range"], r["status"], r["sent"]) for r in server.log] == [
        (None, 302, 0), (None, 200, 3000), ("bytes=3000-", 302, 0), ("bytes=3000-", 206, len(DATA) - 3000)]
    assert not part.exists() and manifest(path)["sha256"] == SHA


def test_a_complete_part_is_finished_without_downloading_again(server):
    server.files["/f/tiny_net.pt"] = DATA
    model = entry(server.url + "/f/tiny_net.pt", sha256=SHA)
    part = zoo.local_path(model).with_name("tiny_net.pt.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(DATA)  # e.g. the process died between the last byte and the rename
    assert zoo.download(model, progress=False).read_bytes() == DATA
    assert [(r["range"], r["status"], r["sent"]) for r in server.log] == [("bytes=10243-", 416, 0)]
    part.write_bytes(DATA + b"longer")  # does not fit the file on the server: start over
    assert zoo.download(model, progress=False, force=False) == zoo.local_path(model)  # present: no request
    assert zoo.download(model, progress=False, force=True) and len(server.log) == 2  # force deletes the part
    part.write_bytes(DATA + b"longer")
    zoo.local_path(model).unlink()
    assert zoo.download(model, progress=False).read_bytes() == DATA
    assert [(r["range"], r["status"], r["sent"]) for r in server.log[2:]] == [("bytes=10249-", 416, 0),
                                                                               (None, 200, len(DATA))]


def test_a_server_without_range_support_starts_over(server):
    server.files["/f/tiny_net.pt"] = DATA
    server.ranges = False
    model = entry(server.url + "/f/tiny_net.pt")
    part = zoo.local_path(model).with_name("tiny_net.pt.part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 100)  # left over, and not even the right bytes
    assert zoo.download(model, progress=False).read_bytes() == DATA
    assert [(r["range"], r["status"], r["sent"]) for r in server.log] == [("bytes=100-", 200, len(DATA))]


@pytest.mark.parametrize("pin, served, message", [
    (dict(size=len(DATA) + 1), DATA, "offers 10243 bytes, the published file has 10244"),
    (dict(sha256=SHA), DATA[:-1] + b"E", f"got sha256 [0-9a-f]{{64}}, the published file has {SHA}"),
])
def test_wrong_size_or_hash_leaves_no_file(server, pin, served, message):
    server.files["/f/tiny_net.pt"] = served
    model = entry(server.url + "/f/tiny_net.pt", **pin)
    with pytest.raises(ModelDownloadError, match=message):
        zoo.download(model, progress=False)
    folder = zoo.local_path(model).parent
    assert list(folder.iterdir()) == []  # no final file, no part, no manifest
    assert zoo.cached(model) is None


def test_a_file_changed_on_disk_is_refused_and_moved_aside(server):
    server.files["/f/tiny_net.pt"] = DATA
    model = entry(server.url + "/f/tiny_net.pt")
    path = zoo.download(model, progress=False)
    path.write_bytes(DATA[:100] + b"?" + DATA[101:])  # same size, one byte changed
    with pytest.raises(ModelDownloadError, match=r"changed since it was fetched.*moved to .*tiny_net\.pt\.bad"):
        zoo.download(model, progress=False)
    assert not path.exists() and not path.with_name("tiny_net.pt.json").exists()
    assert path.with_name("tiny_net.pt.bad").read_bytes()[100:101] == b"?"
    assert len(server.log) == 1
    assert zoo.download(model, progress=False).read_bytes() == DATA and len(server.log) == 2  # a fresh copy
    path.write_bytes(DATA + b"!")
    with pytest.raises(ModelDownloadError, match="10244 bytes"):
        zoo.verify(model)
    with pytest.raises(ModelDownloadError, match="not downloaded yet"):
        zoo.verify(model)


def test_a_file_placed_by_hand():
    loose = entry(dead_url())
    path = zoo.local_path(loose)
    path.parent.mkdir(parents=True)
    path.write_bytes(DATA)
    assert zoo.download(loose) == path  # nothing pinned: accepted, manifest written, no network
    info = manifest(path)
    assert (info["placed_by_hand"], info["url"], info["sha256"], info["size"]) == (True, None, SHA, len(DATA))
    pinned = replace(loose, name="pinned", file="pinned.pt", sha256=hashlib.sha256(b"other").hexdigest())
    zoo.local_path(pinned).write_bytes(DATA)
    with pytest.raises(ModelDownloadError, match="pinned.pt.bad"):
        zoo.cached(pinned)
    assert not zoo.local_path(pinned).exists()
    good = replace(pinned, sha256=SHA, size=len(DATA))
    zoo.local_path(good).write_bytes(DATA)
    assert zoo.verify(good) == zoo.local_path(good) and manifest(zoo.local_path(good))["placed_by_hand"]


@pytest.mark.parametrize("case", ["404", "no server", "timeout"])
def test_failures_say_where_to_put_the_file(server, monkeypatch, case):
    server.slow["/slow/tiny_net.pt"] = 1.0
    server.files["/slow/tiny_net.pt"] = DATA
    monkeypatch.setattr(zoo, "TIMEOUT", 0.3)
    url = {"404": server.url + "/missing/tiny_net.pt", "no server": dead_url(),
           "timeout": server.url + "/slow/tiny_net.pt"}[case]
    model = entry(url)
    start = time.monotonic()
    with pytest.raises(ModelDownloadError) as info:
        zoo.download(model, progress=False)
    message = str(info.value)
    assert {"404": "HTTP 404", "no server": "refused", "timeout": "timed out"}[case] in message
    assert url in message and "FACELAB_ZOO_MIRROR" in message and str(zoo.local_path(model)) in message
    assert time.monotonic() - start < 1.0 and not zoo.local_path(model).exists()


def test_mirror_folder_replaces_the_origin(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "tiny_net.pt").write_bytes(DATA)
    monkeypatch.setenv("FACELAB_ZOO_MIRROR", str(mirror))
    model = entry(dead_url(), sha256=SHA)
    path = zoo.download(model, progress=False)
    assert path.read_bytes() == DATA and manifest(path)["url"] == str(mirror / "tiny_net.pt")
    with pytest.raises(ModelDownloadError, match=r"FACELAB_ZOO_MIRROR points to a folder without other\.pt"):
        zoo.download(entry(dead_url(), name="other"), progress=False)


def test_mirror_url_replaces_the_origin(server, monkeypatch):
    server.files["/mirror/tiny_net.pt"] = DATA
    monkeypatch.setenv("FACELAB_ZOO_MIRROR", server.url + "/mirror/")
    path = zoo.download(entry(dead_url()), progress=False)
    assert path.read_bytes() == DATA and [r["path"] for r in server.log] == ["/mirror/tiny_net.pt"]
    assert manifest(path)["url"] == server.url + "/mirror/tiny_net.pt"


# --- the command ------------------------------------------------------------------------
@pytest.fixture
def cli_zoo(tmp_path, monkeypatch):
    """Three test entries (one unsupported) whose own URLs are dead, and a mirror folder with two files."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in ("net_a", "net_b"):
        (mirror / f"{name}.pt").write_bytes(DATA + name.encode())
    models = [entry(dead_url(), "net_a"), entry(dead_url(), "net_b"),
              entry(dead_url(), "net_c", supported=False, reason="not a timm network")]
    monkeypatch.setattr(zoo, "MODELS", {m.name: m for m in models})
    monkeypatch.setenv("FACELAB_ZOO_MIRROR", str(mirror))
    return mirror


def test_cli_download_all_and_list(cli_zoo, capsys):
    assert main(["download", "--all", "--no-progress", "--no-convert"]) == 0
    out, err = capsys.readouterr()
    for name in ("net_a", "net_b"):
        path = zoo.local_path(name)
        assert path.read_bytes() == DATA + name.encode() and f"{name}: {path}" in out
    assert "skipped net_c: unsupported: not a timm network" in err and not zoo.local_path("net_c").exists()
    assert main(["download", "--list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert sorted(rows) == ["net_a", "net_b", "net_c"]
    assert rows["net_a"].split()[1:] == ["emotion", "tf_efficientnet_b0", "?", "cached"]
    assert rows["net_c"].split()[3:5] == ["?", "-"] and rows["net_c"].endswith("unsupported: not a timm network")


def test_cli_unknown_name_and_failures(cli_zoo, capsys):
    assert main(["download", "net_a", "nope"]) == 1
    err = capsys.readouterr().err
    assert "unknown model 'nope'" in err and "net_a, net_b, net_c" in err and "Traceback" not in err
    assert not zoo.local_path("net_a").exists()  # nothing downloaded before the names are checked
    (cli_zoo / "net_a.pt").unlink()
    assert main(["download", "net_a", "net_b", "--no-progress", "--no-convert"]) == 2
    out, err = capsys.readouterr()
    failures = err.strip().splitlines()
    assert len(failures) == 1 and failures[0].startswith("facelab: net_a: FACELAB_ZOO_MIRROR points to")
    assert out.strip() == f"net_b: {zoo.local_path('net_b')}"


# --- the registry -----------------------------------------------------------------------
EMOTION = ["enet_b0_8_best_afew", "enet_b0_8_best_vgaf", "enet_b0_8_va_mtl", "enet_b2_8", "enet_b2_7"]
IDENTITY = ["state_vggface2_enet0_new", "state_vggface2_enet2", "state_vggface2_rexnet_150", "facenet_vggface2"]


def test_registry_entries():
    import timm

    assert set(zoo.MODELS) == set(EMOTION + IDENTITY + ["mbf_va_mtl", "mobilevit_va_mtl"])
    for name in EMOTION:
        m = zoo.get(name)
        b2 = name.startswith("enet_b2")
        assert (m.architecture, m.image_size) == (("tf_efficientnet_b2", 260) if b2 else ("tf_efficientnet_b0", 224))
        assert (m.file_format, m.head, m.mean, m.std, m.trained_on) == (
            "pickled model", "classifier", L.IMAGENET_MEAN, L.IMAGENET_STD, "AffectNet")
        assert m.labels == L.emotions(7 if name.endswith("_7") else 8)
        assert m.url == f"https://github.com/sb-ai-lab/EmotiEffLib/blob/main/models/affectnet_emotions/{name}.pt?raw=true"
        assert m.extra_outputs == (("valence", "arousal") if "va_mtl" in name else ())
    assert zoo.get("enet_b0_8_best_vgaf").figures == {"AffectNet-8": 61.32, "AffectNet-7": 64.57, "AFEW": 55.14,
                                                      "VGAF": 68.29}
    assert [m.name for m in zoo.list_models("valence")] == ["enet_b0_8_va_mtl", "mbf_va_mtl", "mobilevit_va_mtl"]
    assert [m.name for m in zoo.list_models("identity")] == IDENTITY
    for m in zoo.list_models(supported_only=True):
        assert m.reason is None and (timm.is_model(m.architecture) or m.name == "facenet_vggface2"), m.name
        assert m.size is None and m.sha256 is None and m.url.startswith("https://github.com/")
    for m in zoo.MODELS.values():
        assert m.supported == (m.reason is None) and m.name in m.summary
    assert {m.name for m in zoo.MODELS.values() if not m.supported} == {"mbf_va_mtl", "mobilevit_va_mtl"}
    assert [zoo.get(n).trained_on for n in IDENTITY] == ["VGGFace2"] * 4
    with pytest.raises(InvalidInputError, match="known: enet_b0_8_best_afew, enet_b0_8_best_vgaf"):
        zoo.get("enet_b0_8")


def test_facenet_entry_matches_facenet_pytorch():
    import torch
    from facenet_pytorch import InceptionResnetV1, fixed_image_standardization

    m = zoo.get("facenet_vggface2")
    assert m.architecture == "facenet_pytorch." + InceptionResnetV1.__name__ and m.image_size == 160
    pixels = torch.arange(256, dtype=torch.float64)
    ours = (pixels / 255 - m.mean[0]) / m.std[0]
    assert torch.allclose(ours, fixed_image_standardization(pixels), atol=1e-12)
    classifiers = importlib.metadata.metadata("facenet-pytorch").get_all("Classifier")
    assert m.licence == "MIT" and "License :: OSI Approved :: MIT License" in classifiers
    assert m.url.endswith("/releases/download/v2.2.9/20180402-114759-vggface2.pt")


def test_is_zoo_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert zoo.is_zoo_name("enet_b2_8") and not zoo.is_zoo_name("runs/emotion.safetensors")
    (tmp_path / "enet_b2_8").write_bytes(b"a checkpoint someone named so")
    assert not zoo.is_zoo_name("enet_b2_8") and not zoo.is_zoo_name(tmp_path / "enet_b0_8_va_mtl")


def test_import_touches_no_network_and_no_torch(home):
    code = (
        "import socket, sys, urllib.request\n"
        "def refuse(*args, **kw): raise AssertionError('network access')\n"
        "socket.socket.connect = socket.create_connection = urllib.request.urlopen = refuse\n"
        "import facelab.zoo as zoo\n"
        "print(len(zoo.list_models()), zoo.cached('enet_b0_8_best_vgaf'), 'torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={"FACELAB_HOME": str(home), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["11", "None", "False"]
