"""Running the studio: a socket on the chosen address, uvicorn serving :func:`create_app` on it.

The socket is bound before the server starts, so that a port already taken is one clear
error, and port 0 gives a free port that can be printed before the first request.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
import webbrowser
from pathlib import Path

import uvicorn

from charrnn.errors import CharRNNError
from charrnn.studio.app import LOOPBACK_HOSTS, create_app
from charrnn.studio.limits import StudioLimits

#: Addresses that mean "every address of this machine".
WILDCARDS = ("0.0.0.0", "::", "")
#: Seconds the server waits for open event streams when it stops, before it cuts them.
GRACEFUL_SECONDS = 1


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port); a failure is one :class:`CharRNNError`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except (OSError, OverflowError) as error:
        sock.close()
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise CharRNNError(f"--host {host} --port {port}: cannot listen there ({reason})") from None
    sock.set_inheritable(True)
    return sock


def url_of(host: str, port: int) -> str:
    """The address to open in a browser (a wildcard address is opened as 127.0.0.1)."""
    shown = "127.0.0.1" if host in WILDCARDS else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def serve(host: str = "127.0.0.1", port: int = 0, runs: str | Path | None = None, open_browser: bool = False,
          limits: StudioLimits = StudioLimits(), out=None, err=None, on_ready=None) -> None:
    """Serve the studio until Ctrl-C (or ``on_ready``'s server is told to stop).

    Prints the address on ``out`` (stdout), and on ``err`` (stderr) a warning when ``host`` is
    not a loopback address: anyone who can reach it can then use the page. ``on_ready`` is
    called with the ``uvicorn.Server`` and the URL once the socket listens (the tests use it).
    """
    out, err = out or sys.stdout, err or sys.stderr
    sock = bind(host, port)
    url = url_of(host, sock.getsockname()[1])
    if not is_loopback(host):
        print(f"charrnn studio: warning: listening on {host or 'every address'}, not on 127.0.0.1: anyone "
              "who can reach this machine can use the page, train on it and read the runs it shows",
              file=err, flush=True)
    hosts = list(LOOPBACK_HOSTS) + ([] if host in WILDCARDS else [host])
    app = create_app(runs, limits, hosts=hosts, any_ip=host in WILDCARDS)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", ws="none", http="h11",
                            timeout_graceful_shutdown=GRACEFUL_SECONDS)
    server = uvicorn.Server(config)
    print(f"charrnn studio: serving on {url} (Ctrl-C stops it)", file=out, flush=True)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, [url]).start()
    if on_ready is not None:
        on_ready(server, url)
    try:
        server.run(sockets=[sock])
    finally:
        app.state.jobs.stop_all()
        sock.close()
