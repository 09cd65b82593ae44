"""The studio's ASGI application: the page, its JSON API and its event streams (Starlette).

:func:`create_app` builds it. Every route under ``/api/`` answers JSON, or Server-Sent Events
for what changes while the page watches (a lecture job, a run's metrics, a sample being made).
:class:`Guard` stands in front of every request: the ``Host`` must be one of the server's own
names (against DNS rebinding), and an API request from a page of another origin is refused
(``Origin``, ``Sec-Fetch-Site``; a POST must say ``application/json``, which no cross-site form
can), so a page on the web cannot drive the studio from a visitor's browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import re
from dataclasses import asdict
from pathlib import Path

import anyio.to_thread
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from charrnn.checks import check_integer, check_number, check_optional
from charrnn.errors import CharRNNError
from charrnn.lecture import LectureSettings
from charrnn.sampling import make_generator, sample
from charrnn.studio.examples import describe_examples
from charrnn.studio.jobs import LectureJobs
from charrnn.studio.limits import StudioLimits
from charrnn.studio.runs import RunError, RunFolders
from charrnn.studio.views import SampleStream, inspect_view

STATIC = Path(__file__).resolve().parent / "static"
#: The names a loopback server answers to.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: Seconds between two looks at a job or a metrics log for an event stream.
JOB_POLL_SECONDS, METRICS_POLL_SECONDS = 0.05, 1.0
#: What a request to start a lecture job may name.
START_KEYS = ("example", "seed", "cell", "hidden_size", "learning_rate", "optimizer", "dense", "iterations")
#: Seconds a Step request waits for the job's thread.
STEP_TIMEOUT = 120.0
#: Headers on every response: nothing from another host, no framing, no sniffing.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
                                 b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


class HTTPError(Exception):
    """A request refused with ``status`` and a one-line ``message`` (answered as ``{"error": ...}``)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _host_name(host: str) -> str | None:
    """The name part of a ``Host`` header (``[::1]:8000`` -> ``::1``), or None when malformed."""
    match = re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^\[\]:/@\s]+)(:\d{1,5})?", host)
    return match.group(1).strip("[]").lower() if match else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Guard:
    """ASGI middleware: refuses foreign ``Host`` / ``Origin`` / cross-site requests, adds :data:`SECURITY_HEADERS`.

    ``any_ip`` (a server bound to every address) also takes a ``Host`` that is an IP address:
    DNS rebinding needs a name, never a bare address.
    """

    def __init__(self, app, hosts=LOOPBACK_HOSTS, any_ip: bool = False):
        self.app, self.hosts, self.any_ip = app, {host.lower() for host in hosts}, any_ip

    def refusal(self, scope) -> str | None:
        """Why the request of ``scope`` is refused, or None."""
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        name = _host_name(host)
        if name is None or not (name in self.hosts or (self.any_ip and _is_ip(name))):
            return f"Host {host[:100]!r} is not this server's: refused (DNS rebinding?)"
        if not scope["path"].startswith("/api/"):
            return None
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            return f"requests from {origin[:100]!r} are refused: the studio answers its own page only"
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return f"a {site[:30]} request is refused: the studio answers its own page only"
        if scope["method"] not in ("GET", "HEAD"):
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                return "a POST must send JSON (Content-Type: application/json)"
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        reason = self.refusal(scope)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    header for header in SECURITY_HEADERS if header[0] not in names]
            await send(message)

        if reason is not None:
            response = JSONResponse({"error": reason}, status_code=403)
            return await response(scope, receive, send_with_headers)
        await self.app(scope, receive, send_with_headers)


class Slots:
    """At most ``limit`` of something at once (event streams, samples being made)."""

    def __init__(self, limit: int, what: str):
        self.limit, self.what, self.used = limit, what, 0

    def take(self) -> Slot:
        """One slot, or a 429 :class:`HTTPError` naming the limit."""
        if self.used >= self.limit:
            raise HTTPError(429, f"{self.limit} {self.what} at once is the most there may be; "
                                 "wait for one to end (or close a tab)")
        self.used += 1
        return Slot(self)


class Slot:
    """A taken slot; :meth:`release` may be called any number of times."""

    def __init__(self, slots: Slots):
        self.slots, self.released = slots, False

    def release(self) -> None:
        """Give the slot back (once)."""
        if not self.released:
            self.released = True
            self.slots.used -= 1


def sse(event: str, data) -> str:
    """One Server-Sent Event: ``event: NAME`` and its data as one line of JSON."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


def _event_stream(events, slots: list[Slot]) -> StreamingResponse:
    """``events`` (an async iterator of SSE strings) as a response; the ``slots`` go back when it ends."""
    def release():
        for slot in slots:
            slot.release()

    async def body():
        try:
            async for event in events:
                yield event
        finally:
            release()

    async def release_later():
        release()  # also when the stream never started (the client left at once)

    return StreamingResponse(body(), media_type="text/event-stream", background=BackgroundTask(release_later),
                             headers={"x-accel-buffering": "no"})


async def _read_json(request: Request, limit: int) -> dict:
    """The request's JSON object, at most ``limit`` bytes (413 past it, 400 for anything but an object)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPError(413, f"the request is larger than {limit:,} bytes, the most the studio takes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPError(413, f"the request is larger than {limit:,} bytes, the most the studio takes")
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise HTTPError(400, "the request's body is not valid JSON") from None
    if not isinstance(value, dict):
        raise HTTPError(400, "the request's body must be a JSON object")
    return value


def _text(body: dict, key: str, limit: int, default: str = "") -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise HTTPError(400, f"{key} must be a string")
    if len(value) > limit:
        raise HTTPError(413, f"{key} has {len(value):,} characters; the studio takes at most {limit:,}")
    return value


def _max_events(request: Request) -> int | None:
    value = request.query_params.get("max_events")
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise HTTPError(400, "max_events must be a positive integer")
    return int(value)


def create_app(runs: str | Path | None = None, limits: StudioLimits = StudioLimits(), hosts=LOOPBACK_HOSTS,
               any_ip: bool = False):
    """The studio as an ASGI application.

    Parameters
    ----------
    runs : path, optional
        The folder whose run folders the page may show (read-only). None: only the pretrained models.
    limits : StudioLimits
        The caps on every request.
    hosts : iterable of str
        The names the server answers to in ``Host`` (default: the loopback names).
    any_ip : bool
        Also answer to a ``Host`` that is an IP address (a server bound to every address).
    """
    folders = RunFolders(runs, limits)
    jobs = LectureJobs(limits)
    streams = Slots(limits.max_streams, "event streams")
    samplers = Slots(limits.max_samples, "samples being made")
    recorders = Slots(limits.max_inspections, "texts being recorded")

    def job_of(request: Request):
        job = jobs.get(request.path_params["job"])
        if job is None:
            raise HTTPError(404, "no such lecture job (it was replaced or stopped): start the example again")
        return job

    async def index(request: Request):
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def state(request: Request):
        return JSONResponse({"limits": asdict(limits), "has_runs_folder": folders.root is not None})

    async def examples(request: Request):
        return JSONResponse({"examples": describe_examples()})

    async def start(request: Request):
        body = await _read_json(request, limits.max_body_bytes)
        unknown = sorted(set(body) - set(START_KEYS))
        if unknown:
            raise HTTPError(400, f"unknown setting {unknown[0][:50]!r}; expected some of {', '.join(START_KEYS)}")
        try:
            settings = LectureSettings(seed=body.get("seed", 0), cell=body.get("cell"),
                                       hidden_size=body.get("hidden_size"), learning_rate=body.get("learning_rate"),
                                       optimizer=body.get("optimizer", "tf-adam"), dense=body.get("dense"))
        except TypeError as error:
            raise HTTPError(400, str(error)) from None
        if settings.dense is not None and not isinstance(settings.dense, bool):
            raise HTTPError(400, "dense must be true or false")
        job = await anyio.to_thread.run_sync(jobs.start, body.get("example"), settings, body.get("iterations"))
        return JSONResponse({"job": job.id, "code": job.code, "snapshot": job.snapshot(), "losses": []})

    async def job_state(request: Request):
        job = job_of(request)
        return JSONResponse({"job": job.id, "code": job.code, "snapshot": job.snapshot(),
                             "losses": list(job.loss_log[1])})

    async def control(request: Request):
        job = job_of(request)
        action = request.path_params["action"]
        if action == "play":
            job.play()
        elif action == "pause":
            job.pause()
        else:
            body = await _read_json(request, limits.max_body_bytes)
            if action == "step":
                count = check_integer("count", body.get("count", 1), maximum=limits.max_step, as_flag=False)
                future = job.step(count)
            elif action == "reset":
                future = job.reset()
            else:
                raise HTTPError(404, f"no action {action[:50]!r}: play, pause, step or reset")
            try:
                snapshot = await asyncio.wait_for(asyncio.wrap_future(future), STEP_TIMEOUT)
            except asyncio.TimeoutError:
                raise HTTPError(503, "the job did not answer in time") from None
            return JSONResponse({"job": job.id, "snapshot": snapshot, "losses": list(job.loss_log[1])})
        return JSONResponse({"job": job.id, "playing": job.playing})

    async def job_events(request: Request):
        job = job_of(request)
        most = _max_events(request)
        slot = streams.take()

        async def events():
            seen, generation, sent, count = None, None, 0, 0
            while True:
                if job.version != seen:
                    seen = job.version
                    snapshot = job.snapshot()
                    log_generation, losses = job.loss_log
                    if log_generation != generation:
                        generation, sent = log_generation, 0
                    new = losses[sent:]
                    yield sse("snapshot", dict(snapshot, losses_start=sent, losses=new))
                    sent += len(new)
                    count += 1
                    if most is not None and count >= most:
                        return
                if job.stopped:
                    yield sse("end", {"job": job.id, "error": job.error})
                    return
                await asyncio.sleep(JOB_POLL_SECONDS)

        return _event_stream(events(), [slot])

    async def list_runs(request: Request):
        return JSONResponse({"runs": await anyio.to_thread.run_sync(folders.list)})

    def run_of(source, name):
        return folders.resolve(source, name)

    async def metrics(request: Request):
        ref = run_of(request.query_params.get("source"), request.query_params.get("name"))
        offset = request.query_params.get("offset", "0")
        if not offset.isdigit():
            raise HTTPError(400, "offset must be an integer >= 0")
        return JSONResponse(await anyio.to_thread.run_sync(folders.metrics, ref, int(offset)))

    async def metrics_events(request: Request):
        ref = run_of(request.query_params.get("source"), request.query_params.get("name"))
        most = _max_events(request)
        slot = streams.take()

        async def events():
            offset, count = 0, 0
            while True:
                read = await anyio.to_thread.run_sync(folders.metrics, ref, offset)
                if count == 0 or read["records"] or read["reset"]:
                    offset = read["offset"]
                    yield sse("metrics", read)
                    count += 1
                    if most is not None and count >= most:
                        return
                await asyncio.sleep(METRICS_POLL_SECONDS)

        return _event_stream(events(), [slot])

    async def sample_route(request: Request):
        body = await _read_json(request, limits.max_body_bytes)
        ref = run_of(body.get("source"), body.get("name"))
        prime = _text(body, "prime", limits.max_prime_length)
        length = check_integer("length", body.get("length", 500), maximum=limits.max_sample_length)
        temperature = check_number("temperature", body.get("temperature", 1.0), low=0, low_open=True, high=10)
        top_k = check_optional(check_integer, "top_k", body.get("top_k"))
        seed = check_optional(check_integer, "seed", body.get("seed"), minimum=0, maximum=2**63 - 1)
        skip_unknown = body.get("skip_unknown", False) is True
        loaded = await anyio.to_thread.run_sync(folders.load, ref)
        characters = sample(loaded.model, loaded.vocabulary, prime=prime, length=length, temperature=temperature,
                            top_k=top_k, generator=make_generator(seed), skip_unknown=skip_unknown)
        stream_slot = streams.take()
        try:
            sampler_slot = samplers.take()
        except HTTPError:
            stream_slot.release()
            raise
        stream = SampleStream(characters)

        async def events():
            yield sse("start", {"source": ref.source, "name": ref.name, "prime": prime,
                                "checkpoint": loaded.path.name})
            async for kind, value in stream.events():
                yield sse(kind, {"text": value} if kind == "text" else {"error": value})

        return _event_stream(events(), [stream_slot, sampler_slot])

    async def inspect(request: Request):
        body = await _read_json(request, limits.max_body_bytes)
        ref = run_of(body.get("source"), body.get("name"))
        text = _text(body, "text", limits.max_inspect_length)
        layer = body.get("layer")
        kind = body.get("kind", "h")
        slot = recorders.take()
        try:
            loaded = await anyio.to_thread.run_sync(folders.load, ref)
            view = await anyio.to_thread.run_sync(
                lambda: inspect_view(loaded, text, limits.max_inspect_length, layer=layer, kind=kind,
                                     skip_unknown=body.get("skip_unknown", False) is True))
        finally:
            slot.release()
        return JSONResponse(view)

    async def not_found(request: Request):
        raise HTTPError(404, f"no such API route: {request.url.path[:100]}")

    async def on_http_error(request: Request, error: HTTPError):
        return JSONResponse({"error": error.message}, status_code=error.status)

    async def on_run_error(request: Request, error: RunError):
        return JSONResponse({"error": str(error)}, status_code=error.status)

    async def on_charrnn_error(request: Request, error: CharRNNError):
        # A setting out of range, an unknown character, a damaged checkpoint: the request's fault.
        return JSONResponse({"error": _short(str(error), folders)}, status_code=400)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            jobs.stop_all()  # the server is stopping (Ctrl-C): no training goes on

    routes = [
        Route("/", index),
        Route("/api/state", state),
        Route("/api/lecture/examples", examples),
        Route("/api/lecture/start", start, methods=["POST"]),
        Route("/api/lecture/{job}", job_state),
        Route("/api/lecture/{job}/events", job_events),
        Route("/api/lecture/{job}/{action}", control, methods=["POST"]),
        Route("/api/runs", list_runs),
        Route("/api/metrics", metrics),
        Route("/api/metrics/events", metrics_events),
        Route("/api/sample", sample_route, methods=["POST"]),
        Route("/api/inspect", inspect, methods=["POST"]),
        Route("/api/{rest:path}", not_found, methods=["GET", "POST"]),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPError: on_http_error, RunError: on_run_error,
                                        CharRNNError: on_charrnn_error})
    app.state.jobs, app.state.runs, app.state.streams = jobs, folders, streams
    guarded = Guard(app, hosts, any_ip)
    guarded.state = app.state  # the tests and the server reach the jobs through it
    return guarded


def _short(message: str, folders: RunFolders) -> str:
    """``message`` with the --runs folder's path left out (the page names runs by their names)."""
    if folders.root is not None:
        message = message.replace(str(folders.root) + "/", "")
    return message[:500]
