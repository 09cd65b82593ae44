"""``charrnn studio`` on the command line and as a real server: the missing-extras line, bad
options, the printed address, the warning off loopback, Ctrl-C (130), and streams that stop when
their reader goes away."""

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import run_cli

from charrnn.commands import studio as studio_command

starlette = pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx2")

from charrnn.studio.server import is_loopback, serve, url_of  # noqa: E402


def test_without_the_web_packages_it_says_what_to_install(capsys, monkeypatch):
    real = studio_command.importlib.import_module

    def missing(name, *args):
        if name in ("starlette", "uvicorn"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(name, *args)

    monkeypatch.setattr(studio_command.importlib, "import_module", missing)
    code, out, err = run_cli(capsys, "studio")
    assert code == 2 and out == ""
    assert err == "charrnn: error: charrnn studio needs the web packages: pip install 'charrnn[studio]'\n"


@pytest.mark.parametrize("argv, words", [
    (["--port", "70000"], "--port must be an integer in [0, 65535], got 70000"),
    (["--port", "http"], "invalid int value: 'http'"),
    (["--runs", "/no/such/folder"], "--runs /no/such/folder: no such folder"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_options_are_one_line_and_exit_2(capsys, argv, words):
    code, _, err = run_cli(capsys, "studio", *argv)
    assert code == 2 and words in err and err.count("\n") == 1 and err.startswith("charrnn: error: ")


def test_a_port_in_use_is_one_line(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(capsys, "studio", "--port", port)
    assert code == 2 and f"--host 127.0.0.1 --port {port}: cannot listen there" in err and err.count("\n") == 1


def test_addresses_and_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.org")
    assert url_of("0.0.0.0", 80) == "http://127.0.0.1:80/" and url_of("::1", 81) == "http://[::1]:81/"


class Running:
    """:func:`serve` in a thread, until :meth:`stop`."""

    def __init__(self, host="127.0.0.1", runs=None):
        self.out, self.err, self.ready = io.StringIO(), io.StringIO(), threading.Event()
        self.thread = threading.Thread(target=serve, kwargs=dict(host=host, port=0, runs=runs, out=self.out,
                                                                 err=self.err, on_ready=self._ready))
        self.thread.start()
        assert self.ready.wait(30)
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)

    def _ready(self, server, url):
        self.server, self.url = server, url
        self.ready.set()

    @property
    def state(self):
        return self.server.config.app.state

    def stop(self):
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def running():
    server = Running()
    yield server
    server.stop()


def test_the_address_is_printed_and_serves_the_page(running):
    printed = running.out.getvalue()
    match = re.fullmatch(r"charrnn studio: serving on (http://127\.0\.0\.1:(\d+)/) \(Ctrl-C stops it\)\n", printed)
    assert match and match.group(1) == running.url and int(match.group(2)) > 0
    assert running.err.getvalue() == ""  # no warning on loopback
    assert httpx.get(running.url).status_code == 200
    assert httpx.get(running.url + "api/state").json()["has_runs_folder"] is False


def test_another_host_prints_a_warning():
    server = Running(host="0.0.0.0")
    try:
        assert "warning: listening on 0.0.0.0, not on 127.0.0.1" in server.err.getvalue()
        assert server.url.startswith("http://127.0.0.1:")
        assert httpx.get(server.url + "api/state").status_code == 200
    finally:
        server.stop()


def test_a_closed_stream_stops_its_work(running):
    """A tab that closes drops its connection: the job stream and the sampler thread both end."""
    job = httpx.post(running.url + "api/lecture/start", json={"example": "hihello"}).json()["job"]
    with httpx.stream("GET", f"{running.url}api/lecture/{job}/events", timeout=30) as response:
        lines = response.iter_lines()  # kept: a dropped iterator would close the stream itself
        assert next(lines) == "event: snapshot"
        assert running.state.streams.used == 1
    body = {"source": "pretrained", "name": "shakespeare", "length": 2000, "seed": 1}
    with httpx.stream("POST", running.url + "api/sample", json=body, timeout=30) as response:
        lines = response.iter_lines()
        assert next(lines) == "event: start"
        assert running.state.streams.used >= 1
    deadline = time.monotonic() + 10
    while (running.state.streams.used or any(thread.name == "charrnn-studio-sample" for thread in threading.enumerate())) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running.state.streams.used == 0
    assert not any(thread.name == "charrnn-studio-sample" for thread in threading.enumerate())


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT")
def test_ctrl_c_stops_the_jobs_and_exits_130():
    process = subprocess.Popen([sys.executable, "-m", "charrnn", "studio"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        url = re.search(r"http://\S+/", process.stdout.readline()).group(0)
        job = httpx.post(url + "api/lecture/start", json={"example": "hihello", "iterations": 5000},
                         timeout=60).json()["job"]
        httpx.post(f"{url}api/lecture/{job}/play", json={}, timeout=30)
        with httpx.stream("GET", f"{url}api/lecture/{job}/events", timeout=30) as response:
            lines = response.iter_lines()
            next(lines)  # a stream left open: Ctrl-C must not wait for it
            process.send_signal(signal.SIGINT)
            code = process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 130
    assert process.stderr.read().strip().splitlines()[-1] == "charrnn: interrupted"


def test_the_studio_is_listed_in_the_help(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "studio" in out
    code, out, _ = run_cli(capsys, "studio", "--help")
    assert code == 0 and "--runs DIR" in out and "--open" in out and "127.0.0.1" in out
