"""The report of ``charrnn inspect``: a page, two pictures and a summary of what a model learned.

The command line is a thin skin over :func:`inspect_text` (or, for a recording in hand,
:func:`write_report`), which writes into one folder:

- ``inspect.html``: the text as one ``<span>`` per character, coloured by a chosen unit
  (Karpathy's RNN post, 2015) or by its surprise; hovering a character shows the model's
  top-5 guesses for the next one; the units that track each feature best, a click away. One
  file, its CSS and script inline, nothing fetched from another host;
- ``units.png``: one layer's units (of one kind) over the text's characters, on a fixed scale;
- ``saturation.png``: per gate, how often each unit sits near 0 or near 1 (Karpathy, Johnson &
  Fei-Fei, 2015); left out, with a note, for a model without gates;
- ``units.json``: per feature the best units with their scores, and per position the top-5
  guesses and the surprise;
- ``recording.safetensors``: the whole :class:`~charrnn.inspection.Recording`.

Every text from the corpus or the model is data: the template engine escapes it, and the
numbers for the page's script travel as JSON inside ``<script type="application/json">`` with
``<``, ``>`` and ``&`` escaped, so no text can close the element.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charrnn.files import atomic_write, make_folder, write_json
from charrnn.inspection import FEATURES, GATE_KINDS, Recording, best_units, record, saturation, score_units

PAGE_FILE, UNITS_PICTURE, SATURATION_PICTURE = "inspect.html", "units.png", "saturation.png"
SUMMARY_FILE, RECORDING_FILE = "units.json", "recording.safetensors"
#: How many numbers the page carries at most (each about 6 bytes of JSON): past it, the page
#: drops kinds (gates first, then ``c``) and then characters, and says so.
MAX_PAGE_VALUES = 2_000_000
#: How many characters ``units.png`` shows at most (the first ones).
MAX_PICTURE_CHARACTERS = 400
#: Units listed per feature in ``units.json`` and on the page.
TOP_UNITS = 5
#: The colour maps, shared by the pictures (matplotlib) and the page (sampled stops).
DIVERGING, SEQUENTIAL = "RdBu_r", "viridis"


def value_range(kind: str) -> tuple[float, float]:
    """The fixed colour scale of ``kind``: [0, 1] for a gate, [-1, 1] for tanh-range kinds (``c`` is clipped)."""
    return (0.0, 1.0) if kind in GATE_KINDS else (-1.0, 1.0)


def colour_map(kind: str) -> str:
    """The matplotlib colour map of ``kind``: sequential for a gate, diverging around 0 otherwise."""
    return SEQUENTIAL if kind in GATE_KINDS else DIVERGING


def colour_stops(name: str, count: int = 11) -> list[str]:
    """``count`` evenly spaced colours of the matplotlib map ``name`` as ``#rrggbb`` (for the page)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps[name]
    return [to_hex(cmap(index / (count - 1))) for index in range(count)]


# -- the summary (units.json) ---------------------------------------------------------------------
def _unit_entry(score) -> dict:
    return {"layer": score.layer, "kind": score.kind, "unit": score.unit, "score": round(score.score, 4),
            "measure": "|r|" if score.auc is None else "AUC", "correlation": round(score.correlation, 4),
            "auc": None if score.auc is None else round(score.auc, 4), "direction": score.direction}


def summarize(recording: Recording, scores: list, feature_names, top: int = TOP_UNITS) -> dict:
    """What ``units.json`` holds: per feature its ``top`` best units (a feature constant on the
    text has none, and a note), per position the top-5 guesses and the surprise (nats), and the loss."""
    scored = {score.feature for score in scores}
    features = {}
    for name in feature_names:
        if name in scored:
            features[name] = {"units": [_unit_entry(score) for score in best_units(scores, name, top)]}
        else:
            features[name] = {"units": [], "note": "constant on this text: nothing to score"}
    positions = [{"character": char, "top": recording.guesses(t),
                  "surprise": None if math.isnan(value) else round(float(value), 5)}
                 for t, (char, value) in enumerate(zip(recording.text, recording.surprise))]
    finite = recording.surprise[np.isfinite(recording.surprise)]
    return {"characters": len(recording), "cell_types": recording.cell_types,
            "loss": round(float(finite.mean()), 5) if finite.size else None,
            "features": features, "positions": positions}


# -- the page -------------------------------------------------------------------------------------
def _page_kinds(recording: Recording, budget: int) -> tuple[list[list[str]], int, list[str]]:
    """Which kinds per layer and how many characters fit ``budget`` numbers; and notes saying what was cut."""
    units = [values["h"].shape[1] for values in recording.layers]
    order = ["h", "c", "candidate", *GATE_KINDS]
    chosen: list[list[str]] = [[] for _ in recording.layers]
    used, notes = 0, []
    characters = min(len(recording), max(1, budget // max(sum(units), 1)))
    if characters < len(recording):
        notes.append(f"the page shows the first {characters:,} of {len(recording):,} characters "
                     f"(the full recording is in {RECORDING_FILE})")
    for kind in order:
        for layer, values in enumerate(recording.layers):
            if kind in values:
                cost = characters * units[layer]
                if kind == "h" or used + cost <= budget:
                    chosen[layer].append(kind)
                    used += cost
                else:
                    notes.append(f"layer {layer} {kind} left off the page to keep it small "
                                 f"(it is in {RECORDING_FILE})")
    return chosen, characters, notes


def page_data(recording: Recording, scores: list, feature_names, initial: dict,
              max_values: int = MAX_PAGE_VALUES) -> tuple[dict, int, list[str]]:
    """The numbers for the page's script, and how many characters the page shows, and notes.

    ``layers[l].kinds[k].units[u]`` is unit ``u``'s value at every character (rounded to 3
    decimals), ``top[t]`` the guesses after character ``t`` as ``[character, probability]``,
    ``surprise[t]`` in bits (null for the last), ``best[feature]`` the units that track it.
    """
    chosen, characters, notes = _page_kinds(recording, max_values)
    layers = []
    for layer, values in enumerate(recording.layers):
        kinds = {}
        for kind in chosen[layer]:
            matrix = np.round(values[kind][:characters].astype(np.float64), 3)  # (T, N)
            kinds[kind] = {"range": list(value_range(kind)), "map": colour_map(kind),
                           "units": matrix.T.tolist()}  # (N, T)
        layers.append({"cell": recording.cell_types[layer], "kinds": kinds})
    bits = recording.surprise_bits[:characters]
    surprise = [None if math.isnan(value) else round(float(value), 3) for value in bits]
    finite = [value for value in surprise if value is not None]
    best = {name: [_unit_entry(score) for score in best_units(scores, name, TOP_UNITS)]
            for name in feature_names if any(score.feature == name for score in scores)}
    data = {"layers": layers, "surprise": surprise,
            "surprise_max": max(1.0, math.ceil(max(finite))) if finite else 1.0,
            "top": [[[char, round(probability, 4)] for char, probability in recording.guesses(t)]
                    for t in range(characters)],
            "best": best, "initial": initial,
            "maps": {DIVERGING: colour_stops(DIVERGING), SEQUENTIAL: colour_stops(SEQUENTIAL)}}
    return data, characters, notes


def script_json(value) -> str:
    """``value`` as JSON safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` as ``\\u003c`` etc.

    >>> script_json({"text": "</script>&"})
    '{"text": "\\\\u003c/script\\\\u003e\\\\u0026"}'
    """
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(loader=PackageLoader("charrnn", "templates"), autoescape=True,
                       undefined=StrictUndefined, keep_trailing_newline=True)


def character_class(char: str) -> str:
    """The CSS class that gives a character a visible mark: ``nl`` (↵), ``tab`` (→), ``sp``, or ``''``."""
    return {"\n": "nl", "\t": "tab", " ": "sp"}.get(char, "")


def render_html(recording: Recording, scores: list, saturation_values: dict | None = None,
                feature_names=None, initial: dict | None = None, title: str = "charrnn inspect",
                notes=(), max_values: int = MAX_PAGE_VALUES) -> str:
    """The page (``inspect.html``) as a string: the text, its units, guesses and surprise.

    ``initial`` is the unit shown first (``{"layer", "kind", "unit"}``; default the top
    layer's ``h`` unit 0). ``saturation_values`` (from :func:`~charrnn.inspection.saturation`)
    adds, per gate, the units most often saturated.
    """
    feature_names = list(FEATURES if feature_names is None else feature_names)
    initial = initial or {"layer": recording.num_layers - 1, "kind": "h", "unit": 0}
    data, characters, page_notes = page_data(recording, scores, feature_names, initial, max_values)
    saturated = []
    for (layer, gate), (left, right) in sorted((saturation_values or {}).items()):
        saturated.append({"layer": layer, "gate": gate, "left": float(left.mean()), "right": float(right.mean())})
    finite = recording.surprise[np.isfinite(recording.surprise)]
    template = _environment().get_template("inspect.html.j2")
    return template.render(
        title=title, characters=[(char, character_class(char)) for char in recording.text[:characters]],
        data_json=script_json(data), notes=[*notes, *page_notes], saturated=saturated,
        num_characters=len(recording), cell_types=recording.cell_types,
        loss_bits=float(finite.mean() / math.log(2)) if finite.size else None,
        pictures={"units": UNITS_PICTURE, "saturation": SATURATION_PICTURE if saturated else None})


# -- the pictures ---------------------------------------------------------------------------------
def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write(path, buffer.getvalue())


def _tick_label(char: str) -> str:
    return {"\n": "↵", "\t": "→", " ": "␣", "$": r"\$"}.get(char, char)


def plot_units(recording: Recording, layer: int, kind: str, path,
               max_characters: int = MAX_PICTURE_CHARACTERS) -> Path:
    """Draw ``layer``'s ``kind`` units (rows) over the text's characters (columns) into a PNG at ``path``.

    On a fixed scale, with a colour bar: [-1, 1] diverging for ``h``, ``c`` (clipped) and the
    candidate, [0, 1] sequential for a gate. At most ``max_characters`` (the first ones).
    """
    if kind not in recording.kinds(layer):
        raise ValueError(f"kind must be one of {', '.join(recording.kinds(layer))}, got {kind!r}")
    values = recording.layers[layer][kind][:max_characters].T  # (N, T)
    units, characters = values.shape
    low, high = value_range(kind)
    figure = _figure(min(24.0, max(6.0, 1.5 + characters * 0.14)), min(14.0, max(3.0, 1.5 + units * 0.12)))
    axes = figure.add_subplot()
    image = axes.imshow(values, aspect="auto", interpolation="nearest", cmap=colour_map(kind),
                        vmin=low, vmax=high)
    shown = "" if characters == len(recording) else f" (first {characters} of {len(recording)} characters)"
    axes.set_title(f"layer {layer} {kind} ({recording.cell_types[layer]}){shown}")
    axes.set_ylabel("unit")
    if characters <= 120:
        axes.set_xticks(range(characters), [_tick_label(char) for char in recording.text[:characters]],
                        fontsize=7)
    else:
        axes.set_xlabel("character position")
    figure.colorbar(image, ax=axes, extend="both" if kind == "c" else "neither", label=kind)
    with warnings.catch_warnings():  # a character the font lacks (Hangul, emoji) is drawn as a box
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        figure.tight_layout()
        return _save(figure, path)


def plot_saturation(saturation_values: dict, path) -> Path | None:
    """Draw gate saturation into a PNG at ``path``: one panel per gate, a point per unit, coloured by layer.

    x: the fraction of characters a unit is right-saturated (> 0.9), y: left-saturated (< 0.1),
    as in Karpathy, Johnson & Fei-Fei (2015). Returns None (writes nothing) without gates.
    """
    gates = [gate for gate in GATE_KINDS if any(key[1] == gate for key in saturation_values)]
    if not gates:
        return None
    layers = sorted({layer for layer, _ in saturation_values})
    figure = _figure(3.4 * len(gates) + 0.6, 3.8)
    colours = colour_stops("tab10", 10)
    for index, gate in enumerate(gates):
        axes = figure.add_subplot(1, len(gates), index + 1)
        axes.plot([0, 1], [1, 0], color="0.8", linewidth=0.8)  # x + y <= 1: below the line
        for layer in layers:
            if (layer, gate) in saturation_values:
                left, right = saturation_values[layer, gate]
                axes.scatter(right, left, s=12, alpha=0.7, color=colours[layer % 10], label=f"layer {layer}")
        axes.set_xlim(-0.02, 1.02)
        axes.set_ylim(-0.02, 1.02)
        axes.set_aspect("equal")
        axes.set_title(f"{gate} gate")
        axes.set_xlabel("fraction right-saturated (> 0.9)")
        if index == 0:
            axes.set_ylabel("fraction left-saturated (< 0.1)")
        axes.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    return _save(figure, path)


# -- the whole report -----------------------------------------------------------------------------
@dataclass
class Report:
    """What :func:`write_report` wrote, and what the terminal summary prints."""

    out_dir: Path
    files: list[Path]
    recording: Recording
    scores: list
    summary: dict
    initial: dict
    notes: list[str] = field(default_factory=list)


def default_view(recording: Recording, scores: list, layer: int | None = None, kind: str | None = None) -> dict:
    """The unit shown first: in ``layer`` (default the top one) and ``kind`` (default ``h``), the
    unit that tracks some feature best (unit 0 when none was scored there)."""
    layer = recording.num_layers - 1 if layer is None else layer
    kinds = recording.kinds(layer)
    kind = "h" if kind is None else kind
    if kind not in kinds:
        raise ValueError(f"kind must be one of {', '.join(kinds)} for layer {layer}, got {kind!r}")
    candidates = [score for score in scores if score.layer == layer and score.kind == kind]
    unit = max(candidates, key=lambda score: score.score).unit if candidates else 0
    return {"layer": layer, "kind": kind, "unit": unit}


def write_report(recording: Recording, out_dir, features: dict | None = None, layer: int | None = None,
                 kind: str | None = None, title: str = "charrnn inspect",
                 max_page_values: int = MAX_PAGE_VALUES) -> Report:
    """Score ``recording``'s units against ``features`` (default :data:`FEATURES`) and write the report.

    Writes ``inspect.html``, ``units.png`` (``layer`` and ``kind`` as :func:`default_view`),
    ``saturation.png`` (none without gates: a note says so), ``units.json`` and
    ``recording.safetensors`` into ``out_dir`` (made if needed), each file atomically.
    """
    features = dict(FEATURES if features is None else features)
    scores = score_units(recording, features)
    initial = default_view(recording, scores, layer, kind)
    gates = saturation(recording)
    out_dir = make_folder(out_dir, "the report")
    notes = []
    written = [plot_units(recording, initial["layer"], initial["kind"], out_dir / UNITS_PICTURE)]
    if plot_saturation(gates, out_dir / SATURATION_PICTURE) is None:
        notes.append(f"no {SATURATION_PICTURE}: the model's cells ({', '.join(sorted(set(recording.cell_types)))}) "
                     "have no gates")
    else:
        written.append(out_dir / SATURATION_PICTURE)
    summary = summarize(recording, scores, features)
    written.append(write_json(out_dir / SUMMARY_FILE, summary))
    recording.save(out_dir / RECORDING_FILE)
    written.append(out_dir / RECORDING_FILE)
    page = render_html(recording, scores, gates, list(features), initial, title=title, notes=notes,
                       max_values=max_page_values)
    written.insert(0, atomic_write(out_dir / PAGE_FILE, page))
    return Report(out_dir, written, recording, scores, summary, initial, notes)


def inspect_text(model, vocabulary, text: str, out_dir, features: dict | None = None,
                 skip_unknown: bool = False, layer: int | None = None, kind: str | None = None,
                 title: str = "charrnn inspect") -> Report:
    """Record ``text`` through ``model`` (:func:`~charrnn.inspection.record`) and :func:`write_report` it.

    What a Python user calls for what ``charrnn inspect`` does::

        loaded = load_model("run")
        report = inspect_text(loaded.model, loaded.vocabulary, "some text", "inspect-run")
    """
    recording = record(model, vocabulary, text, skip_unknown=skip_unknown)
    return write_report(recording, out_dir, features, layer=layer, kind=kind, title=title)
