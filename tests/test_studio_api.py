"""``charrnn studio``'s API through Starlette's test client: every endpoint and event stream, and
lecture jobs that give ``charrnn lecture``'s numbers step for step."""

import contextlib
import io
import json
import shutil
import time

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from starlette.testclient import TestClient  # noqa: E402

from charrnn.lecture import (  # noqa: E402
    TRAINING_EXAMPLES,
    LectureOptions,
    LectureSettings,
    LectureTraining,
    fit,
    hihello_example,
    run_lecture,
)
from charrnn.studio.app import create_app  # noqa: E402
from charrnn.studio.examples import TENSORFLOW_CODE  # noqa: E402
from charrnn.training.reporting import METRICS_FILE  # noqa: E402
from charrnn.vocabulary import one_hot  # noqa: E402

BASE = "http://127.0.0.1:8765"


def events(text: str) -> list[tuple[str, dict]]:
    """The Server-Sent Events of a response body, as (event, data) pairs."""
    parsed = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n"))
        parsed.append((lines["event"], json.loads(lines["data"])))
    return parsed


@pytest.fixture(scope="module")
def runs_root(run_dir, tmp_path_factory):
    """A --runs folder holding a copy of the shared tiny run (as ``tiny``) and a nested one."""
    root = tmp_path_factory.mktemp("studio-runs")
    shutil.copytree(run_dir, root / "tiny")
    shutil.copytree(run_dir, root / "group" / "nested")
    (root / "not-a-run").mkdir()
    return root


@pytest.fixture
def client(runs_root):
    with TestClient(create_app(runs=runs_root), base_url=BASE) as test_client:
        yield test_client


def start(client, **settings):
    response = client.post("/api/lecture/start", json=settings)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for path in ("/static/studio.js", "/static/studio.css", "/static/vendor/uPlot.iife.min.js",
                 "/static/vendor/uPlot.min.css", "/static/vendor/LICENSE"):
        assert client.get(path).status_code == 200, path
    strings = client.get("/static/strings.json").json()
    assert set(strings) == {"en", "ko"} and set(strings["en"]) == set(strings["ko"])
    assert client.get("/static/../app.py").status_code == 404
    state = client.get("/api/state").json()
    assert state["has_runs_folder"] and state["limits"]["max_hidden_size"] == 128
    assert client.get("/api/nothing").status_code == 404


def test_examples_describe_the_three_training_examples(client):
    examples = client.get("/api/lecture/examples").json()["examples"]
    assert [example["name"] for example in examples] == ["hihello", "long-sequence", "long-sentence"]
    hihello = examples[0]
    assert hihello["input_text"] == "hihell" and hihello["target_text"] == "ihello"
    assert (hihello["cell"], hihello["hidden_size"], hihello["dense"], hihello["iterations"]) == ("lstm", 5, False, 2000)
    assert examples[2]["num_layers"] == 2 and len(examples[2]["target_text"]) == 179
    assert all("tf." in example["tensorflow_code"] for example in examples)
    assert set(TENSORFLOW_CODE) == set(TRAINING_EXAMPLES)


@pytest.mark.parametrize("name, settings, steps", [
    ("hihello", {}, 40),
    ("hihello", {"dense": True, "hidden_size": 7, "cell": "gru", "optimizer": "adam", "seed": 3}, 25),
    ("long-sequence", {"cell": "rnn", "learning_rate": 0.05}, 12),
    ("long-sentence", {}, 3),
])
def test_step_n_gives_the_lecture_loss_after_n_iterations(client, name, settings, steps):
    job = start(client, example=name, **settings)
    assert job["snapshot"]["iteration"] == 0 and job["snapshot"]["loss"] is None
    first = client.post(f"/api/lecture/{job['job']}/step", json={"count": 1}).json()
    rest = client.post(f"/api/lecture/{job['job']}/step", json={"count": steps - 1}).json()
    assert rest["snapshot"]["iteration"] == steps and len(rest["losses"]) == steps

    # The lecture's own loop (charrnn lecture's fit), set up by hand from the same seed and settings.
    example = TRAINING_EXAMPLES[name]()
    reference = LectureTraining.for_example(example, LectureSettings(**{
        key: value for key, value in settings.items() if key in ("seed", "cell", "hidden_size", "learning_rate",
                                                                 "optimizer", "dense")}))
    loss, prediction = fit(reference.model, one_hot(example.inputs, example.num_classes), example.targets, steps,
                           reference.optimizer.param_groups[0]["lr"], settings.get("optimizer", "tf-adam"), 0, str,
                           lambda line: None)
    assert rest["snapshot"]["loss"] == loss  # bitwise: the same object does the same arithmetic
    assert first["losses"][0] == rest["losses"][0]
    assert rest["snapshot"]["prediction"] == example.read(prediction)
    positions = rest["snapshot"]["positions"]
    hidden = rest["snapshot"]["hidden"]  # (layers, positions, H)
    assert len(hidden) == example.num_layers and len(positions) == len(example.positions()) == len(hidden[-1])
    assert all(len(row) == rest["snapshot"]["hidden_size"] for layer in hidden for row in layer)
    assert all(-1 <= value <= 1 for layer in hidden for row in layer for value in row)
    assert all(len(position["guesses"]) == min(5, example.num_classes) for position in positions)


def test_step_matches_the_command_line_lecture(client):
    """``charrnn lecture hihello --iterations 30`` prints the loss of its last iteration; Step 30 gives it too."""
    lines = []
    results = run_lecture(["hihello"], LectureOptions(iterations=30, every=1), lines.append)
    job = start(client, example="hihello", iterations=30)
    stepped = client.post(f"/api/lecture/{job['job']}/step", json={"count": 30}).json()
    assert results[0].details["loss"] == stepped["snapshot"]["loss"]
    printed = [line for line in lines if line.startswith("29 loss: ")][0]
    assert printed.startswith(f"29 loss: {stepped['snapshot']['loss']:.6g} ")
    assert stepped["snapshot"]["done"]  # 30 of 30: Step takes no more
    again = client.post(f"/api/lecture/{job['job']}/step", json={"count": 5}).json()
    assert again["snapshot"]["iteration"] == 30


def test_the_shown_charrnn_code_runs_and_gives_the_jobs_numbers(client):
    job = start(client, example="hihello", iterations=6, dense=True, hidden_size=8, seed=2)
    stepped = client.post(f"/api/lecture/{job['job']}/step", json={"count": 6}).json()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(job["code"], "the studio's code", "exec"), {"__name__": "studio_code"})
    last = printed.getvalue().strip().splitlines()[-1].split()
    assert last[0] == "5" and float(last[2]) == stepped["snapshot"]["loss"]


def test_play_reaches_ihello_and_pause_reset_work(client):
    job = start(client, example="hihello", iterations=300)
    identity = job["job"]
    assert client.post(f"/api/lecture/{identity}/play", json={}).json()["playing"] is True
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        snapshot = client.get(f"/api/lecture/{identity}").json()["snapshot"]
        if snapshot["done"]:
            break
        time.sleep(0.05)
    assert snapshot["done"] and not snapshot["playing"] and snapshot["prediction"] == "ihello"
    reference = LectureTraining.for_example(hihello_example())
    for _ in range(300):
        loss = reference.step()
    assert snapshot["loss"] == float(loss)
    client.post(f"/api/lecture/{identity}/pause", json={})
    reset = client.post(f"/api/lecture/{identity}/reset", json={}).json()
    assert reset["snapshot"]["iteration"] == 0 and reset["losses"] == [] and reset["snapshot"]["generation"] == 1
    assert client.post(f"/api/lecture/{identity}/jump", json={}).status_code == 404


def test_a_new_job_for_an_example_stops_the_old_one(client):
    first = start(client, example="long-sequence")["job"]
    second = start(client, example="long-sequence", cell="gru")["job"]
    assert client.get(f"/api/lecture/{first}").status_code == 404
    assert client.get(f"/api/lecture/{second}").status_code == 200
    other = start(client, example="hihello")["job"]
    assert client.get(f"/api/lecture/{other}").status_code == 200  # another example's job lives on


def test_the_job_event_stream_sends_snapshots_with_new_losses(client):
    job = start(client, example="hihello")
    identity = job["job"]
    client.post(f"/api/lecture/{identity}/step", json={"count": 4})
    response = client.get(f"/api/lecture/{identity}/events?max_events=1")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    [(kind, data)] = events(response.text)
    assert kind == "snapshot" and data["iteration"] == 4 and data["losses_start"] == 0 and len(data["losses"]) == 4
    assert client.get(f"/api/lecture/{identity}/events?max_events=0").status_code == 400
    # A stream open on a job that is replaced ends with an "end" event.
    import threading

    received = []
    watcher = threading.Thread(target=lambda: received.append(client.get(f"/api/lecture/{identity}/events").text))
    watcher.start()
    time.sleep(0.3)
    start(client, example="hihello")
    watcher.join(10)
    assert events(received[0])[-1] == ("end", {"job": identity, "error": None})


def test_settings_out_of_range_are_refused_with_a_message(client):
    for settings, words in [({"example": "nope"}, "--example must be one of"),
                            ({"example": "hihello", "hidden_size": 7}, "without the dense layer"),
                            ({"example": "hihello", "cell": "tcn"}, "--cell must be one of"),
                            ({"example": "hihello", "learning_rate": 0}, "--learning-rate"),
                            ({"example": "hihello", "optimizer": "sgd"}, "--optimizer"),
                            ({"example": "hihello", "dense": "yes"}, "dense must be true or false"),
                            ({"example": "hihello", "seed": "0"}, "--seed"),
                            ({"example": "hihello", "surprise": 1}, "unknown setting 'surprise'")]:
        response = client.post("/api/lecture/start", json=settings)
        assert response.status_code == 400 and words in response.json()["error"], (settings, response.text)


def test_runs_are_listed_with_the_pretrained_model_first(client):
    runs = client.get("/api/runs").json()["runs"]
    assert runs[0] == {"source": "pretrained", "name": "shakespeare", "description": runs[0]["description"],
                       "has_metrics": False, "has_checkpoint": True}
    names = [run["name"] for run in runs if run["source"] == "runs"]
    assert names == ["group/nested", "tiny"]
    assert all(run["has_metrics"] and run["has_checkpoint"] for run in runs[1:])


def test_metrics_are_read_from_an_offset_and_streamed(client, runs_root):
    query = {"source": "runs", "name": "tiny"}
    read = client.get("/api/metrics", params=query).json()
    assert read["exists"] and [record["step"] for record in read["records"]] == [6, 12]
    assert "val_loss" in read["records"][-1] and "train_loss" in read["records"][0]
    assert client.get("/api/metrics", params={**query, "offset": read["offset"]}).json()["records"] == []
    beyond = client.get("/api/metrics", params={**query, "offset": read["offset"] + 10**6}).json()
    assert beyond["reset"] and len(beyond["records"]) == 2  # a rewritten (shorter) log is read again
    streamed = events(client.get("/api/metrics/events", params={**query, "max_events": 1}).text)
    assert streamed[0][0] == "metrics" and len(streamed[0][1]["records"]) == 2
    none = client.get("/api/metrics", params={"source": "pretrained", "name": "shakespeare"}).json()
    assert none == {"records": [], "offset": 0, "reset": False, "exists": False}


def test_metrics_stream_shows_lines_a_running_training_appends(client, runs_root, monkeypatch):
    import charrnn.studio.app as app_module

    monkeypatch.setattr(app_module, "METRICS_POLL_SECONDS", 0.05)
    live = runs_root / "live"
    live.mkdir()
    (live / METRICS_FILE).write_text(json.dumps({"step": 1, "train_loss": 3.0}) + "\n", encoding="utf-8")
    import threading

    def append_later():
        time.sleep(0.3)
        with open(live / METRICS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"step": 2, "train_loss": 2.5, "val_loss": 2.7}) + "\n")
            handle.write('{"step": 3, "train_lo')  # a line still being written is not read yet

    writer = threading.Thread(target=append_later)
    writer.start()
    body = client.get("/api/metrics/events", params={"source": "runs", "name": "live", "max_events": 2}).text
    writer.join()
    first, second = events(body)
    assert [record["step"] for record in first[1]["records"]] == [1]
    assert second[1]["records"] == [{"step": 2, "train_loss": 2.5, "val_loss": 2.7}]


def test_a_sample_streams_characters_and_is_reproducible(client):
    body = {"source": "runs", "name": "tiny", "prime": "line", "length": 300, "temperature": 0.8, "top_k": 5, "seed": 7}
    response = client.post("/api/sample", json=body)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    streamed = events(response.text)
    assert streamed[0] == ("start", {"source": "runs", "name": "tiny", "prime": "line", "checkpoint": "best"})
    texts = [data["text"] for kind, data in streamed if kind == "text"]
    assert streamed[-1][0] == "end" and len("".join(texts)) == 300
    again = events(client.post("/api/sample", json=body).text)
    assert "".join(data["text"] for kind, data in again if kind == "text") == "".join(texts)

    from charrnn.checkpoint import load_model
    from charrnn.sampling import make_generator, sample

    loaded = load_model(client.app.state.runs.root / "tiny")
    expected = "".join(sample(loaded.model, loaded.vocabulary, prime="line", length=300, temperature=0.8, top_k=5,
                              generator=make_generator(7)))
    assert "".join(texts) == expected


def test_the_pretrained_model_samples_and_bad_settings_are_400(client):
    streamed = events(client.post("/api/sample", json={"source": "pretrained", "name": "shakespeare",
                                                       "prime": "ROMEO:", "length": 40, "seed": 1}).text)
    assert len("".join(data["text"] for kind, data in streamed if kind == "text")) == 40
    for body, words in [({"temperature": 0}, "--temperature"), ({"top_k": 0}, "--top-k"),
                        ({"prime": "\u4e2d"}, "not in the vocabulary"), ({"length": "9"}, "--length")]:
        response = client.post("/api/sample", json={"source": "pretrained", "name": "shakespeare", **body})
        assert response.status_code == 400 and words in response.json()["error"], response.text


def test_inspect_records_a_text(client):
    response = client.post("/api/inspect", json={"source": "runs", "name": "tiny", "text": "line 3: the fox."})
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["characters"] == list("line 3: the fox.") and view["kind"] == "h"
    assert view["layer"] == len(view["layers"]) - 1  # the top layer first
    assert view["range"] == [-1.0, 1.0] and len(view["values"]) == 16 and len(view["values"][0]) == view["units"] == 16
    assert len(view["guesses"]) == 16 and len(view["guesses"][0]) == 5
    assert view["surprise_bits"][-1] is None and all(bits >= 0 for bits in view["surprise_bits"][:-1])
    assert view["layers"][0] == {"cell": "lstm", "kinds": ["h", "c", "input", "forget", "output", "candidate"]}
    gate = client.post("/api/inspect", json={"source": "runs", "name": "tiny", "text": "line", "kind": "forget"}).json()
    assert gate["range"] == [0.0, 1.0]
    assert all(0 <= value <= 1 for row in gate["values"] for value in row)
    bad = client.post("/api/inspect", json={"source": "runs", "name": "tiny", "text": "line", "layer": 9})
    assert bad.status_code == 400 and "layer" in bad.json()["error"]
    unknown = client.post("/api/inspect", json={"source": "runs", "name": "tiny", "text": "€"})
    assert unknown.status_code == 400 and "not in the vocabulary" in unknown.json()["error"]
    skipped = client.post("/api/inspect", json={"source": "runs", "name": "tiny", "text": "li€ne", "skip_unknown": True})
    assert skipped.json()["text"] == "line"


def test_a_job_that_fails_says_why_and_stops(client, monkeypatch):
    job = start(client, example="hihello")["job"]

    def broken(self):
        raise FloatingPointError("the loss is nan at iteration 0; try a smaller learning rate")

    monkeypatch.setattr(LectureTraining, "step", broken)
    response = client.post(f"/api/lecture/{job}/step", json={"count": 3})
    assert response.status_code == 400 and "the loss is nan" in response.json()["error"]
    snapshot = client.get(f"/api/lecture/{job}").json()["snapshot"]
    assert snapshot["stopped"] and "FloatingPointError: the loss is nan" in snapshot["error"]
    assert client.post(f"/api/lecture/{job}/step", json={"count": 1}).status_code == 400


def test_metrics_stream_follows_a_real_charrnn_train(client, runs_root, monkeypatch):
    """Loss curves live: the stream shows the lines of a ``charrnn train`` that is still running."""
    import subprocess
    import sys

    import charrnn.studio.app as app_module

    monkeypatch.setattr(app_module, "METRICS_POLL_SECONDS", 0.05)
    corpus = runs_root.parent / "live-corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40, encoding="utf-8")
    out = runs_root / "training-now"
    process = subprocess.Popen([sys.executable, "-m", "charrnn", "train", str(corpus), "--out", str(out),
                                "--hidden-size", "8", "--embedding-size", "4", "--sequence-length", "8",
                                "--batch-size", "2", "--max-steps", "5000", "--log-every", "5", "--eval-every", "100",
                                "--threads", "1", "--device", "cpu", "--quiet"])
    try:
        deadline = time.monotonic() + 60
        while not (out / METRICS_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        body = client.get("/api/metrics/events", params={"source": "runs", "name": "training-now", "max_events": 3})
        running = process.poll() is None
    finally:
        process.terminate()  # SIGTERM: the run saves and stops (143); it has shown what it had to
        process.wait(60)
    streamed = events(body.text)
    steps = [[record["step"] for record in data["records"]] for _, data in streamed]
    assert len(steps) == 3 and all(steps[1:]) and steps[1][0] > max(steps[0], default=0)
    assert steps[2][0] > steps[1][-1]  # each event brings only the lines new since the last
    assert running, "the training ended before the stream had seen it write"
