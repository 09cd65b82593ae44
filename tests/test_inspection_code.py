"""charrnn.inspection on code: the ``indentation`` feature by hand, and the unit finder on a tiny
LSTM trained on the Python standard library's own sources (on every machine with Python, so
nothing is shipped), with a model of the same shape, untrained, as the control."""

from __future__ import annotations

import json
from pathlib import Path

from charrnn.corpus import prepare_corpus
from charrnn.inspection import (
    FEATURES,
    TAB_WIDTH,
    best_units,
    indentation,
    record,
    score_units,
)
from charrnn.model import CharLM
from charrnn.training import TrainConfig, language_model_trainer

#: The standard library of the running interpreter.
LIBRARY = Path(json.__file__).parent.parent
#: A fixed selection (the json package and five small modules, all ASCII), cut to 50,000 characters.
TRAINING_FILES = ([f"json/{name}.py" for name in ("__init__", "decoder", "encoder", "scanner", "tool")]
                  + ["colorsys.py", "bisect.py", "fnmatch.py", "genericpath.py", "glob.py"])
TRAINING_CHARACTERS = 50_000


def feature(name: str, text: str) -> list[float]:
    return FEATURES[name](text).tolist()


def test_indentation_counts_leading_spaces_and_tabs_as_they_are_read():
    assert TAB_WIDTH == 4 and FEATURES["indentation"] is indentation
    text = "def f(x):\n    if x:\n\treturn  1\n  \n"
    #       d e f _ f ( x ) : \n
    expected = [0] * 10
    #            _ _ _ _  i f _ x : \n: grows over the indentation, stays to the line's end, 0 on the newline
    expected += [1, 2, 3, 4] + [4] * 5 + [0]
    #            \t r e t u r n _ _ 1 \n: a tab adds 4; spaces after the first other character do not count
    expected += [4] + [4] * 9 + [0]
    #            _ _ \n: a line of only spaces
    expected += [1, 2, 0]
    assert feature("indentation", text) == expected
    assert feature("indentation", " \t x") == [1, 5, 6, 6]  # spaces and tabs mixed
    assert feature("indentation", "") == []
    assert feature("indentation", "x\r\n  y") == [0, 0, 0, 1, 2, 2]  # only spaces and tabs are indentation


def standard_library_code() -> tuple[str, str]:
    """The training cut, and a held-out snippet: pprint's ``_safe_repr`` and what follows it
    (4,000 characters of code nested four levels deep, from a file not trained on)."""
    training = "".join((LIBRARY / name).read_text(encoding="utf-8") for name in TRAINING_FILES)
    assert len(training) > TRAINING_CHARACTERS  # the selection is about 64,000 characters in Python 3.11
    pprint = (LIBRARY / "pprint.py").read_text(encoding="utf-8")
    held_out = pprint[pprint.index("def _safe_repr"):][:4000]
    return training[:TRAINING_CHARACTERS], held_out


def test_a_unit_learns_the_indentation_of_standard_library_code(tmp_path):
    training, held_out = standard_library_code()
    assert held_out not in training and max(indentation(held_out)) >= 16
    (tmp_path / "stdlib.py.txt").write_text(training, encoding="utf-8")
    corpus = prepare_corpus([tmp_path / "stdlib.py.txt"], tmp_path / "data")
    settings = TrainConfig(cell="lstm", hidden_size=48, num_layers=1, embedding_size=16, batch_size=16,
                           sequence_length=128, warmup_steps=0, max_steps=400, eval_every=400, log_every=400,
                           device="cpu", seed=0)
    trainer = language_model_trainer(settings, corpus)
    untrained = CharLM(trainer.model.config)
    untrained.load_state_dict(trainer.model.state_dict())  # the same start, before any step
    assert trainer.run().step == 400
    features = {"indentation": FEATURES["indentation"]}

    def best_score(model):
        recording = record(model, corpus.vocabulary, held_out, skip_unknown=True)
        return best_units(score_units(recording, features), "indentation", top=1)[0]

    trained, control = best_score(trainer.model), best_score(untrained)
    # Measured, seeds 0-6 (400 steps, about 3.5 s of training on one thread), the best of the 96
    # h and c units by |r| on the held-out snippet: trained 0.537, 0.604, 0.604, 0.601, 0.458,
    # 0.479, 0.531 (a c unit each time); the same models untrained 0.202, 0.199, 0.229, 0.178,
    # 0.213, 0.267, 0.210 (units that follow the spaces being read). So 0.40 takes training, and
    # the untrained model stays below 0.32. Bracket depth was left out: its best unit reached only
    # 0.28-0.39 trained against 0.26-0.35 untrained, no margin at this size.
    assert trained.kind in ("h", "c") and trained.correlation > 0.40, trained
    assert control.correlation < 0.32, control
    assert trained.correlation - control.correlation > 0.15
