"""``charrnn studio``'s guards: no path out of --runs, hostile names kept as data, every size
capped, and requests from any other origin or host refused."""

import json
import os
import shutil
import threading
import time

import pytest

pytest.importorskip("starlette")

from starlette.testclient import TestClient  # noqa: E402

from charrnn.studio.app import create_app  # noqa: E402
from charrnn.studio.limits import StudioLimits  # noqa: E402

BASE = "http://127.0.0.1:8765"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def roots(run_dir, tmp_path_factory):
    """A --runs folder with a good run, a run with a hostile name, and links out; plus a run outside it."""
    base = tmp_path_factory.mktemp("studio-safety")
    root, outside = base / "runs", base / "outside"
    shutil.copytree(run_dir, root / "tiny")
    shutil.copytree(run_dir, root.joinpath(*HOSTILE.split("/")))  # a folder "<script>alert(1)<" holding "script>"
    shutil.copytree(run_dir, outside / "secret")
    os.symlink(outside / "secret", root / "escape")  # a run folder that is a link out
    os.symlink(root / "tiny", root / "alias")  # a link that stays inside is fine
    sneaky = root / "sneaky"  # a run whose weights are a link out
    shutil.copytree(run_dir, sneaky)
    weights = sneaky / "checkpoints" / "best" / "model.safetensors"
    weights.unlink()
    os.symlink(outside / "secret" / "checkpoints" / "best" / "model.safetensors", weights)
    leaky = root / "leaky"  # a run whose metrics are a link out
    leaky.mkdir()
    os.symlink(outside / "secret" / "metrics.jsonl", leaky / "metrics.jsonl")
    return root, outside


@pytest.fixture
def client(roots):
    with TestClient(create_app(runs=roots[0]), base_url=BASE) as test_client:
        yield test_client


def names(client):
    return [run["name"] for run in client.get("/api/runs").json()["runs"] if run["source"] == "runs"]


def test_links_out_of_the_runs_folder_are_not_listed(client):
    listed = names(client)
    assert "escape" not in listed
    assert "tiny" in listed and "alias" in listed and HOSTILE in listed
    runs = {run["name"]: run for run in client.get("/api/runs").json()["runs"]}
    assert not runs["leaky"]["has_metrics"] and not runs["sneaky"]["has_checkpoint"]


@pytest.mark.parametrize("name", ["../outside/secret", "/etc", "tiny/../../outside/secret", "..", ".", "",
                                  "..\\outside", "tiny\0", ".hidden", "tiny//checkpoints", "escape",
                                  "a" * 2000])
def test_traversal_is_refused_before_reading(client, name):
    for response in (client.get("/api/metrics", params={"source": "runs", "name": name}),
                     client.post("/api/sample", json={"source": "runs", "name": name, "length": 5}),
                     client.post("/api/inspect", json={"source": "runs", "name": name, "text": "li"})):
        assert response.status_code == 400, (name, response.text)
        assert "secret" not in response.text or "outside/secret" in name


def test_encoded_and_odd_names_are_refused_or_absent(client):
    # The query string is decoded once: %2e%2e%2f is "../" and refused; twice encoded, it is a name no run has.
    once = client.get(f"{BASE}/api/metrics?source=runs&name=%2e%2e%2foutside%2fsecret")
    assert once.status_code == 400
    twice = client.get(f"{BASE}/api/metrics?source=runs&name=%252e%252e%252foutside")
    assert twice.status_code == 404 and "no run named" in twice.json()["error"]
    assert client.get("/api/metrics", params={"source": "../runs", "name": "tiny"}).status_code == 400
    assert client.get("/api/metrics", params={"source": "pretrained", "name": "../../etc"}).status_code == 404
    assert client.post("/api/sample", json={"source": "runs", "name": 7}).status_code == 400
    assert client.get("/api/metrics", params={"source": "runs", "name": "not-there"}).status_code == 404
    assert client.get("/static/..%2F..%2Fapp.py").status_code == 404
    assert client.get("/static/%2e%2e/app.py").status_code == 404


def test_files_linked_out_of_a_run_are_refused(client):
    sneaky = client.post("/api/sample", json={"source": "runs", "name": "sneaky", "length": 5})
    assert sneaky.status_code == 400 and "outside the --runs folder" in sneaky.json()["error"]
    leaky = client.get("/api/metrics", params={"source": "runs", "name": "leaky"})
    assert leaky.status_code == 400 and "outside the --runs folder" in leaky.json()["error"]
    inside = client.post("/api/sample", json={"source": "runs", "name": "alias", "length": 5})
    assert inside.status_code == 200


def test_nothing_is_written_into_the_runs_folder(client, roots):
    root = roots[0]
    before = {path: path.stat().st_mtime_ns for path in root.rglob("*") if not path.is_symlink()}
    client.get("/api/runs")
    client.get("/api/metrics", params={"source": "runs", "name": "tiny"})
    client.post("/api/sample", json={"source": "runs", "name": "tiny", "length": 20})
    client.post("/api/inspect", json={"source": "runs", "name": "tiny", "text": "line"})
    after = {path: path.stat().st_mtime_ns for path in root.rglob("*") if not path.is_symlink()}
    assert after == before


def test_a_hostile_run_name_is_data(client):
    """The name travels as JSON (never HTML) and works as any other; the page shows it with textContent."""
    response = client.get("/api/runs")
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert HOSTILE in [run["name"] for run in response.json()["runs"]]
    sampled = client.post("/api/sample", json={"source": "runs", "name": HOSTILE, "length": 5, "seed": 1})
    assert sampled.status_code == 200 and HOSTILE in sampled.text.replace("\\/", "/")
    missing = client.get("/api/metrics", params={"source": "runs", "name": "<img src=x onerror=alert(1)>"})
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"


@pytest.mark.parametrize("path, body, words", [
    ("/api/lecture/start", {"example": "long-sentence", "hidden_size": 129}, "--hidden-size must be an integer in [1, 128]"),
    ("/api/lecture/start", {"example": "hihello", "iterations": 5001}, "--iterations must be an integer in [1, 5000]"),
    ("/api/sample", {"source": "pretrained", "name": "shakespeare", "length": 2001}, "--length must be an integer in [1, 2000]"),
    ("/api/sample", {"source": "pretrained", "name": "shakespeare", "prime": "a" * 2001}, "prime has 2,001 characters"),
    ("/api/inspect", {"source": "pretrained", "name": "shakespeare", "text": "a" * 1001}, "text has 1,001 characters"),
    ("/api/sample", {"source": "pretrained", "name": "shakespeare", "prime": "a" * 70_000}, "larger than 64,000 bytes"),
])
def test_oversize_requests_are_refused_with_the_cap(client, path, body, words):
    response = client.post(path, json=body)
    assert 400 <= response.status_code < 500 and words in response.json()["error"], response.text


def test_a_step_is_capped_and_a_body_must_be_a_json_object(client):
    job = client.post("/api/lecture/start", json={"example": "hihello"}).json()["job"]
    response = client.post(f"/api/lecture/{job}/step", json={"count": 501})
    assert response.status_code == 400 and "count must be an integer in [1, 500]" in response.json()["error"]
    for content in (b"[1, 2]", b"{", b"\xff"):
        response = client.post(f"/api/lecture/{job}/step", content=content, headers={"content-type": "application/json"})
        assert response.status_code == 400


def test_concurrent_jobs_and_streams_are_capped(roots):
    limits = StudioLimits(max_jobs=1, max_streams=1)
    with TestClient(create_app(runs=roots[0], limits=limits), base_url=BASE) as client:
        client.post("/api/lecture/start", json={"example": "hihello"})
        refused = client.post("/api/lecture/start", json={"example": "long-sequence"})
        assert refused.status_code == 400 and "the most there may be" in refused.json()["error"]
        assert client.post("/api/lecture/start", json={"example": "hihello"}).status_code == 200  # a replacement
        live = client.app.state.jobs.get(client.post("/api/lecture/start", json={"example": "hihello"}).json()["job"])
        opened = []
        watcher = threading.Thread(target=lambda: opened.append(client.get(f"/api/lecture/{live.id}/events")))
        watcher.start()
        deadline = time.monotonic() + 10
        while client.app.state.streams.used == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        second = client.get(f"/api/lecture/{live.id}/events")
        assert second.status_code == 429 and "1 event streams at once is the most there may be" in second.json()["error"]
        live.stop()  # ends the first stream
        watcher.join(10)
        assert opened[0].status_code == 200 and client.app.state.streams.used == 0


@pytest.mark.parametrize("headers", [
    {"host": "evil.example"}, {"host": "127.0.0.1.evil.example:8765"}, {"host": "evil.example:8765"},
    {"origin": "http://evil.example"}, {"origin": "http://127.0.0.1:9999"}, {"origin": "null"},
    {"origin": "https://127.0.0.1:8765"}, {"sec-fetch-site": "cross-site"}, {"sec-fetch-site": "same-site"},
])
def test_foreign_host_origin_and_cross_site_requests_are_refused(client, headers):
    for response in (client.get("/api/runs", headers=headers),
                     client.post("/api/lecture/start", json={"example": "hihello"}, headers=headers)):
        assert response.status_code == 403, (headers, response.text)
        assert "refused" in response.json()["error"]


def test_own_origin_and_loopback_names_are_served(client):
    assert client.get("/api/runs", headers={"origin": BASE, "sec-fetch-site": "same-origin"}).status_code == 200
    assert client.get("/api/runs", headers={"host": "localhost:8765", "origin": "http://localhost:8765"}).status_code == 200
    assert client.get("/api/runs", headers={"host": "[::1]:8765"}).status_code == 200
    assert client.get("/", headers={"sec-fetch-site": "cross-site"}).status_code == 200  # a link to the page is fine


def test_a_post_that_is_not_json_is_refused(client):
    """A cross-site form can only send text/plain, form-urlencoded or multipart: none is taken."""
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        response = client.post("/api/lecture/start", content=json.dumps({"example": "hihello"}),
                               headers={"content-type": content_type})
        assert response.status_code == 403 and "must send JSON" in response.json()["error"]


def test_a_server_on_every_address_takes_ip_hosts_but_not_names(roots):
    with TestClient(create_app(runs=roots[0], any_ip=True), base_url="http://192.168.1.5:8765") as client:
        assert client.get("/api/runs").status_code == 200
        assert client.get("/api/runs", headers={"host": "rebound.example:8765"}).status_code == 403


def test_recordings_at_once_are_capped(roots, monkeypatch):
    import charrnn.studio.app as app_module

    entered, release = threading.Event(), threading.Event()

    def slow_view(*args, **kwargs):
        entered.set()
        release.wait(10)
        return {}

    monkeypatch.setattr(app_module, "inspect_view", slow_view)
    with TestClient(create_app(runs=roots[0], limits=StudioLimits(max_inspections=1)), base_url=BASE) as client:
        body = {"source": "runs", "name": "tiny", "text": "line"}
        first = threading.Thread(target=lambda: client.post("/api/inspect", json=body))
        first.start()
        assert entered.wait(10)
        second = client.post("/api/inspect", json=body)
        release.set()
        first.join(10)
        assert second.status_code == 429 and "1 texts being recorded at once is the most" in second.json()["error"]
        assert client.post("/api/inspect", json=body).status_code == 200  # the slot came back
