"""Benchmark: charrnn's RNN classifier against a tuned TF-IDF + logistic-regression baseline.

Three sets, every model scored on the SAME stratified 5-fold split (copies of a text always in
one fold) in the same run:

- ``full``: names-gender (female 5,001 / male 2,943 names, 365 names in both files);
- ``1:20``: all female names and 1 male name for every 20 (250, drawn with ``--seed``);
- ``speakers``: the 12 speakers of tinyshakespeare with the most lines, one line (cut to 40
  characters) per example, the speakers' sizes falling geometrically from 600 lines to 6
  (100:1); built here, deterministically (see :func:`speaker_lines`).

Rows: ``charrnn defaults`` (``CharRNNClassifier()`` as it ships, CPU), ``charrnn best`` (the
best setting docs/classify.md documents; one row when it is the defaults) and, when that blends
the RNN with n-grams, each of its two parts alone, scored from the same fits (the RNN's own
argmax, the n-gram model's), so the table says where a gain comes from; and the baseline:
the best of a grid of TF-IDF + LogisticRegression pipelines (``char`` and ``char_wb`` n-grams
1-4 and 2-5, C in {1, 10}, class_weight None or balanced; 16 pipelines) chosen **in each
outer fold by an inner 3-fold cross-validation of that fold's training side** (macro-F1), so
the baseline is tuned and the test fold is never looked at. charrnn, for its part, picks its
epoch and τ on a validation split of the training side only.

Reported: macro-F1 and balanced accuracy, mean ± standard deviation over the folds, seconds
(fit + predict, all folds; the baseline's includes its inner search), and for charrnn the
paired per-fold difference from the baseline with its standard error: a difference smaller
than two standard errors is said to be within the noise. The exit status is 1 when charrnn's
best setting does not beat the baseline's mean macro-F1 on every set run.

    python bench/bench_classify.py                    # the three sets, 5 folds (about an hour on 2 loaded cores)
    python bench/bench_classify.py --quick            # 3 folds, 2 inner folds, a smaller grid
    python bench/bench_classify.py --datasets 1:20 --folds 2 --epochs 1   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import (
    DATA,
    Verdicts,
    add_common_arguments,
    print_machine_header,
    results_path,
    write_results,
)
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from charrnn.checks import integer_at_least, positive_int
from charrnn.classification import (
    CharRNNClassifier,
    StratifiedDuplicateKFold,
    find_duplicates,
    load_folder,
)

#: The best setting docs/classify.md documents, as changes to the defaults: the RNN blended with a
#: logistic regression on character n-grams whose settings are chosen as the baseline's are (by
#: cross-validation over the same grid), three networks cross-fitted on three folds of each
#: training side (one each), the blend's weight and τ chosen on their out-of-fold scores
#: (docs/classify.md, "Blending with character n-grams").
BEST_SETTING: dict = {"ngrams": True, "ngram_search": True, "cross_fit": 3, "ensemble": 1,
                      "logit_adjustment": "post-hoc"}
#: ``--variants``: the imbalance treatments, each a change to the defaults (the RNN alone).
VARIANTS = {
    "charrnn + post-hoc logit adjustment": {"validation_fraction": 0.1, "logit_adjustment": "post-hoc"},
    "charrnn, logit-adjusted loss (no class weight)": {"class_weight": None, "logit_adjustment": "loss"},
    "charrnn, balanced sampler (no class weight)": {"class_weight": None, "balanced_sampler": True},
    "charrnn, plain (no class weight)": {"class_weight": None},
}
DATASETS = ("full", "1:20", "speakers")


def subsample(texts, labels, rare: str, ratio: int, seed: int):
    """Keep every text of the other classes and one ``rare`` text per ``ratio`` of the largest class."""
    labels = np.asarray(labels)
    others = np.flatnonzero(labels != rare)
    largest = max(np.sum(labels == label) for label in set(labels) - {rare})
    chosen = np.random.default_rng(seed).choice(np.flatnonzero(labels == rare), largest // ratio, replace=False)
    keep = np.sort(np.concatenate([others, chosen]))
    return [texts[i] for i in keep], labels[keep].tolist()


def speaker_lines(path: Path, classes: int = 12, largest: int = 600, ratio: float = 100.0, max_chars: int = 40,
                  seed: int = 0):
    """A many-class, imbalanced set from tinyshakespeare: which speaker says this line.

    Every line of a speech is an example labelled with its speaker (the ``NAME:`` line above
    it), cut to ``max_chars`` characters. The ``classes`` speakers with the most lines are kept,
    in that order; speaker ``k`` keeps ``round(largest · ratio^(-k / (classes - 1)))`` of its
    lines, drawn with ``seed``: 600 down to 6 by default, about 1,750 lines.
    """
    speaker, by_speaker = None, {}
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped:
            speaker = None
        elif re.fullmatch(r"[A-Z][A-Za-z' ]*:", stripped) and speaker is None:
            speaker = stripped[:-1]
        elif speaker is not None:
            by_speaker.setdefault(speaker, []).append(stripped[:max_chars])
    ranked = sorted(by_speaker, key=lambda name: (-len(by_speaker[name]), name))[:classes]
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for k, name in enumerate(ranked):
        size = min(len(by_speaker[name]), int(round(largest * ratio ** (-k / (classes - 1)))))
        chosen = np.sort(rng.choice(len(by_speaker[name]), size, replace=False))
        texts += [by_speaker[name][i] for i in chosen]
        labels += [name] * size
    return texts, labels


def baseline_search(inner_folds: int, quick: bool, cache: str) -> GridSearchCV:
    """The tuned baseline: the grid of TF-IDF + LR pipelines, chosen by inner CV on macro-F1."""
    pipeline = Pipeline([("tfidf", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4))),
                         ("lr", LogisticRegression(max_iter=3000))], memory=cache)
    grid = {"tfidf__analyzer": ["char", "char_wb"], "tfidf__ngram_range": [(1, 4), (2, 5)],
            "lr__C": [1.0, 10.0], "lr__class_weight": [None, "balanced"]}
    if quick:
        grid["tfidf__analyzer"], grid["lr__class_weight"] = ["char_wb"], ["balanced"]
    return GridSearchCV(pipeline, grid, scoring="f1_macro", cv=StratifiedDuplicateKFold(inner_folds, random_state=0),
                        n_jobs=1)


def evaluate(estimator, texts, labels, folds):
    """Fit and score ``estimator`` on each fold: per-fold scores, their mean ± std, total seconds.

    For a charrnn model blended with n-grams, ``parts`` also scores its two parts from the same
    fits: the RNN alone (``argmax`` of its own logits) and the n-gram model alone.
    """
    texts, labels = np.asarray(texts, dtype=object), np.asarray(labels)
    macro_f1, balanced, chosen, started = [], [], [], time.perf_counter()
    parts = {}
    for train, test in folds:
        model = clone(estimator).fit(texts[train].tolist(), labels[train])
        predicted = model.predict(texts[test].tolist())
        macro_f1.append(float(f1_score(labels[test], predicted, average="macro")))
        balanced.append(float(balanced_accuracy_score(labels[test], predicted)))
        if isinstance(model, GridSearchCV):
            chosen.append({key.split("__")[1]: str(value) for key, value in model.best_params_.items()})
            continue
        classifier = model.classifier_
        if classifier.selection:
            chosen.append({key: classifier.selection[key] for key in ("epoch", "tau", "ngram_weight", "ngrams",
                                                                      "temperatures", "cross_fit")
                           if key in classifier.selection})
        if classifier.ngrams is not None:
            test_texts = texts[test].tolist()
            for part, scores in (("RNN", classifier.raw_logits(test_texts)),
                                 ("n-gram", classifier.ngrams.log_proba(test_texts))):
                part_predicted = model.classes_[scores.argmax(axis=1)]
                record = parts.setdefault(part, {"folds_macro_f1": [], "folds_balanced_accuracy": []})
                record["folds_macro_f1"].append(float(f1_score(labels[test], part_predicted, average="macro")))
                record["folds_balanced_accuracy"].append(float(balanced_accuracy_score(labels[test], part_predicted)))
    result = {"macro_f1": float(np.mean(macro_f1)), "macro_f1_std": float(np.std(macro_f1)),
              "balanced_accuracy": float(np.mean(balanced)), "balanced_accuracy_std": float(np.std(balanced)),
              "folds_macro_f1": macro_f1, "seconds": time.perf_counter() - started, "chosen": chosen}
    if parts and len(parts["RNN"]["folds_macro_f1"]) == len(folds):
        result["parts"] = {part: {"macro_f1": float(np.mean(record["folds_macro_f1"])),
                                  "macro_f1_std": float(np.std(record["folds_macro_f1"])),
                                  "balanced_accuracy": float(np.mean(record["folds_balanced_accuracy"])),
                                  "balanced_accuracy_std": float(np.std(record["folds_balanced_accuracy"])),
                                  **record} for part, record in parts.items()}
    return result


def paired_difference(ours: dict, theirs: dict) -> tuple[float, float]:
    """Mean per-fold macro-F1 difference and its standard error (sample std / sqrt(K))."""
    differences = np.array(ours["folds_macro_f1"]) - np.array(theirs["folds_macro_f1"])
    error = float(np.std(differences, ddof=1) / np.sqrt(len(differences))) if len(differences) > 1 else float("nan")
    return float(differences.mean()), error


def within_noise(difference: float, error: float) -> bool:
    """A paired difference no larger than two standard errors (the same predictions: 0 ± 0) is noise."""
    return abs(difference) <= 2 * error


def _describe_choice(chosen: dict) -> str:
    """``tau 0.25 w 0.8 (char_wb 2-5 C=10) T 2.1/0.36``: what one fit of charrnn chose (its epoch too,
    when chosen; T: the RNN's and the n-gram model's calibration temperatures)."""
    keys = ("tau",) if chosen.get("cross_fit") else ("epoch", "tau")
    text = " ".join(f"{key} {chosen[key]:g}" for key in keys if key in chosen)
    if "ngram_weight" in chosen:
        settings = chosen["ngrams"]
        low, high = settings["ngram_range"]
        text += f" w {chosen['ngram_weight']:g} ({settings['analyzer']} {low}-{high} C={settings['C']:g})"
        if "temperatures" in chosen:
            text += " T {:.2g}/{:.2g}".format(*chosen["temperatures"])
    return text.strip()


def print_row(model_name: str, scores: dict, rows: dict, seconds: bool = True) -> None:
    """One line of the table; a charrnn row (not the first) gets its paired difference from the baseline."""
    versus = ""
    if rows and scores is not next(iter(rows.values())):
        difference, error = paired_difference(scores, next(iter(rows.values())))
        noise = "within noise" if within_noise(difference, error) else "beyond noise"
        scores.update(difference=difference, difference_error=error)
        versus = f"{difference:+.3f} ± {error:.3f} ({noise})"
    f1 = f"{scores['macro_f1']:.3f} ± {scores['macro_f1_std']:.3f}"
    balanced = f"{scores['balanced_accuracy']:.3f} ± {scores['balanced_accuracy_std']:.3f}"
    time_taken = f"{scores['seconds']:>8.1f}" if seconds else f"{'':>8}"
    print(f"{model_name:<44} {f1:>15} {balanced:>15} {time_taken}  {versus}", flush=True)


def load_sets(args) -> dict:
    """The benchmark's sets by name, as ``(texts, labels)``."""
    data = load_folder(args.data)
    sets = {"full": (data.texts, data.labels),
            "1:20": subsample(data.texts, data.labels, args.rare, 20, args.seed)}
    sets["speakers"] = speaker_lines(args.speakers, seed=args.seed)
    return sets


def main(argv=None) -> int:
    """Run the benchmark; exit status 1 when charrnn's best setting does not beat the tuned baseline."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, threads=1, data=DATA / "names-gender", data_help="folder of <label>.txt files")
    parser.add_argument("--speakers", type=Path, default=DATA / "tinyshakespeare.txt",
                        help="the corpus the speakers set is cut from")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated: {', '.join(DATASETS)}")
    parser.add_argument("--rare", default="male", help="the class subsampled for 1:20")
    parser.add_argument("--folds", type=integer_at_least(2), default=5)
    parser.add_argument("--inner-folds", type=integer_at_least(2), default=3,
                        help="folds of the baseline's inner search (default: 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds, the subsample and the RNN")
    parser.add_argument("--epochs", type=positive_int, help="override charrnn's epochs (a smoke run)")
    parser.add_argument("--best-setting", type=json.loads, default=None, metavar="JSON",
                        help="try another 'best setting', as changes to the defaults: '{\"ensemble\": 3}'")
    parser.add_argument("--skip-defaults", action="store_true",
                        help="leave out the defaults' row when the best setting differs from them")
    parser.add_argument("--variants", action="store_true",
                        help="also the imbalance treatments: post-hoc logit adjustment, the logit-adjusted loss, "
                             "the balanced sampler, none (4 more charrnn rows per set)")
    parser.add_argument("--quick", action="store_true",
                        help="3 folds, 2 inner folds, the baseline grid cut to char_wb balanced (4 pipelines)")
    args = parser.parse_args(argv)
    if args.quick:
        args.folds, args.inner_folds = min(args.folds, 3), 2
    names = args.datasets.split(",")
    if not set(names) <= set(DATASETS):
        parser.error(f"--datasets must list some of {', '.join(DATASETS)}, got {args.datasets!r}")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(args.threads)  # on a CPU other processes load, 1 is faster: 2 threads then spin
    # The same for NumPy's BLAS, which logistic regression's solver calls: on the loaded 2-core
    # machine one BLAS thread fitted it 10 times faster than two.
    blas = threadpool_limits(limits=args.threads)
    header = print_machine_header()
    sets = load_sets(args)

    overrides = {"device": "cpu", "random_state": args.seed}
    if args.epochs:
        overrides["epochs"] = args.epochs
    defaults = CharRNNClassifier(**overrides)
    best = CharRNNClassifier(**{**(BEST_SETTING if args.best_setting is None else args.best_setting), **overrides})
    same = best.get_params() == defaults.get_params()
    results = {"benchmark": "classify", "machine": header,
               "settings": {key: str(value) for key, value in vars(args).items()},
               "charrnn_defaults": {k: str(v) for k, v in defaults.get_params().items()},
               "charrnn_best": {k: str(v) for k, v in best.get_params().items()}, "datasets": {}}
    verdicts = Verdicts()
    with tempfile.TemporaryDirectory(prefix="bench-classify-") as cache:
        for name in names:
            texts, labels = sets[name]
            counts = {label: labels.count(label) for label in sorted(set(labels), key=lambda c: -labels.count(c))}
            duplicates = find_duplicates(texts, labels)
            folds = list(StratifiedDuplicateKFold(args.folds, shuffle=True, random_state=args.seed)
                         .split(texts, labels))
            shown = ", ".join(f"{label} {count}" for label, count in list(counts.items())[:20])
            print(f"\n== {name}: {len(texts)} texts, {len(counts)} classes ({shown}); {duplicates.describe()}")
            print(f"   stratified {args.folds}-fold, the same folds for every model, torch threads {args.threads}")
            print(f"{'model':<44} {'macro-F1':>15} {'balanced acc':>15} {'seconds':>8}  vs baseline")
            models = [("tuned TF-IDF + LR (inner CV per fold)", baseline_search(args.inner_folds, args.quick, cache))]
            if same or not args.skip_defaults:
                models.append(("charrnn defaults = best setting" if same else "charrnn defaults", defaults))
            if not same:
                models.append(("charrnn best setting", best))
            if args.variants:
                models[-1:-1] = [(label, clone(defaults).set_params(**change)) for label, change in VARIANTS.items()]
            rows = {}
            for model_name, estimator in models:
                rows[model_name] = scores = evaluate(estimator, texts, labels, folds)
                print_row(model_name, scores, rows)
                for part, part_scores in scores.get("parts", {}).items():  # the same fits, one part at a time
                    part_name = f"  its {part} part alone (same fits)"
                    print_row(part_name, part_scores, rows, seconds=False)
            baseline_choices = [" ".join(f"{k}={v}" for k, v in chosen.items())
                                for chosen in next(iter(rows.values()))["chosen"]]
            print("   baseline chosen per fold: " + "; ".join(baseline_choices))
            if rows[models[-1][0]]["chosen"]:
                print("   charrnn best chose per fold: " + "; ".join(_describe_choice(chosen)
                                                                    for chosen in rows[models[-1][0]]["chosen"]))
            results["datasets"][name] = {"counts": counts, "duplicates": vars(duplicates), "models": rows}
            baseline, ours = next(iter(rows.values())), rows[models[-1][0]]  # the best setting is last
            difference, error = ours["difference"], ours["difference_error"]
            verdicts.add(f"charrnn best beats the tuned baseline on {name}", ours["macro_f1"] > baseline["macro_f1"],
                         f"macro-F1 {ours['macro_f1']:.3f} vs {baseline['macro_f1']:.3f} "
                         f"({difference:+.3f} ± {error:.3f}, {'within' if within_noise(difference, error) else 'beyond'} "
                         f"noise), {ours['seconds']:.0f} s vs {baseline['seconds']:.0f} s")
    blas.restore_original_limits()
    torch.set_num_threads(threads_before)
    results["verdicts"] = verdicts.records()
    print()
    write_results(results, results_path("classify", args.results))
    return verdicts.finish()


if __name__ == "__main__":
    sys.exit(main())
