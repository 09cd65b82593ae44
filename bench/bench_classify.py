"""Benchmark: charrnn's RNN classifier against TF-IDF character n-grams + logistic regression.

On names-gender (female 5,001 / male 2,943 names) and on a 1:20 subsample of it (all female
names, 1 male name for every 20), every model is scored on the SAME stratified 5-fold split:
macro-F1, balanced accuracy and wall time (training + prediction over all folds), with ratios
against the reference row (TF-IDF char_wb 1-4 + LogisticRegression at scikit-learn's defaults),
measured in the same run. The CPU may be shared: compare ratios, not absolute seconds.
There is no target: each dataset ends in one line reporting charrnn's ratios (exit status 0);
results go to ``bench/results/classify-<time>.json`` (or ``--results``).

Duplicates: 365 names are in both files (e.g. "Abbey"), so those texts carry both labels.
They are kept, with both labels, and grouped: the two copies of a name always fall in the same
fold, so no model is tested on a name it was trained on, and each such pair in a test fold
costs every model at least one error (no model can get both labels of one text right).

    python bench/bench_classify.py                       # both datasets, about 25 min on 2 cores
    python bench/bench_classify.py --datasets 1:20 --epochs 4   # a quicker look
    python bench/bench_classify.py --datasets 1:20 --folds 2 --epochs 1 --hidden-size 16  # a smoke run
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.pipeline import make_pipeline

from charrnn.checks import integer_at_least, positive_int
from charrnn.classification import CharRNNClassifier, StratifiedDuplicateKFold, find_duplicates, load_folder

from common import DATA, Verdicts, add_common_arguments, print_machine_header, results_path, write_results


def subsample(texts, labels, rare: str, ratio: int, seed: int):
    """Keep every text of the other classes and one ``rare`` text per ``ratio`` of the largest class."""
    labels = np.asarray(labels)
    others = np.flatnonzero(labels != rare)
    largest = max(np.sum(labels == label) for label in set(labels) - {rare})
    chosen = np.random.default_rng(seed).choice(np.flatnonzero(labels == rare), largest // ratio, replace=False)
    keep = np.sort(np.concatenate([others, chosen]))
    return [texts[i] for i in keep], labels[keep].tolist()


def tfidf(ngrams, class_weight=None, C=1.0):
    """TF-IDF of character n-grams inside word boundaries, then logistic regression."""
    return make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=ngrams),
                         LogisticRegression(C=C, max_iter=3000, class_weight=class_weight))


def models(args):
    """(name, estimator); the first is the reference of the ratios."""
    rnn = CharRNNClassifier(cell=args.cell, hidden_size=args.hidden_size, num_layers=args.num_layers,
                            embedding_size=args.embedding_size, dropout=args.dropout, epochs=args.epochs,
                            batch_size=args.batch_size, learning_rate=args.learning_rate,
                            class_weight="balanced", random_state=args.seed, device="cpu")
    return [
        ("tfidf char_wb 1-4 + LR", tfidf((1, 4))),
        ("tfidf char_wb 1-4 + LR balanced", tfidf((1, 4), "balanced")),
        ("tfidf char_wb 2-5 + LR balanced", tfidf((2, 5), "balanced")),
        ("tfidf char_wb 2-5 + LR(C=10) balanced", tfidf((2, 5), "balanced", C=10.0)),
        (f"charrnn {args.cell} {args.num_layers}x{args.hidden_size} balanced", rnn),
    ]


def evaluate(estimator, texts, labels, folds):
    """Fit and score ``estimator`` on each fold; mean ± std of the scores and total seconds."""
    texts, labels = np.asarray(texts, dtype=object), np.asarray(labels)
    macro_f1, balanced, started = [], [], time.perf_counter()
    for train, test in folds:
        model = clone(estimator).fit(texts[train].tolist(), labels[train])
        predicted = model.predict(texts[test].tolist())
        macro_f1.append(f1_score(labels[test], predicted, average="macro"))
        balanced.append(balanced_accuracy_score(labels[test], predicted))
    return {"macro_f1": float(np.mean(macro_f1)), "macro_f1_std": float(np.std(macro_f1)),
            "balanced_accuracy": float(np.mean(balanced)), "balanced_accuracy_std": float(np.std(balanced)),
            "seconds": time.perf_counter() - started}


def main(argv=None) -> int:
    """Run the benchmark (no target: the exit status is 0 unless it breaks)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, threads=2, data=DATA / "names-gender", data_help="folder of <label>.txt files")
    parser.add_argument("--datasets", default="full,1:20", help="comma-separated: full, 1:20")
    parser.add_argument("--rare", default="male", help="the class subsampled for 1:20")
    parser.add_argument("--folds", type=integer_at_least(2), default=5)
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds, the subsample and the RNN")
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--hidden-size", type=positive_int, default=256)
    parser.add_argument("--num-layers", type=positive_int, default=1)
    parser.add_argument("--embedding-size", type=positive_int, default=64)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--epochs", type=positive_int, default=12)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    args = parser.parse_args(argv)
    names = args.datasets.split(",")
    if not set(names) <= {"full", "1:20"}:
        parser.error(f"--datasets must list full and/or 1:20, got {args.datasets!r}")
    torch.set_num_threads(args.threads)  # on a CPU other processes load, 1 is faster: 2 threads then spin
    header = print_machine_header()

    data = load_folder(args.data)
    datasets = {"full": (data.texts, data.labels)}
    datasets["1:20"] = subsample(data.texts, data.labels, args.rare, 20, args.seed)
    results = {"benchmark": "classify", "machine": header,
               "settings": {key: str(value) for key, value in vars(args).items()}, "datasets": {}}
    verdicts = Verdicts()
    for name in names:
        texts, labels = datasets[name]
        counts = {label: labels.count(label) for label in sorted(set(labels))}
        duplicates = find_duplicates(texts, labels)
        folds = list(StratifiedDuplicateKFold(args.folds, shuffle=True, random_state=args.seed).split(texts, labels))
        print(f"\n== {name}: {len(texts)} names {counts}; {duplicates.describe()}")
        print(f"   stratified {args.folds}-fold, the same folds for every model, torch threads {args.threads}")
        print(f"{'model':<40} {'macro-F1':>15} {'balanced acc':>15} {'seconds':>9} {'F1 ratio':>9} {'time ratio':>10}")
        rows = {}
        for model_name, estimator in models(args):
            rows[model_name] = scores = evaluate(estimator, texts, labels, folds)
            reference = next(iter(rows.values()))
            f1 = f"{scores['macro_f1']:.3f} ± {scores['macro_f1_std']:.3f}"
            balanced = f"{scores['balanced_accuracy']:.3f} ± {scores['balanced_accuracy_std']:.3f}"
            print(f"{model_name:<40} {f1:>15} {balanced:>15} {scores['seconds']:>9.1f} "
                  f"{scores['macro_f1'] / reference['macro_f1']:>9.3f} "
                  f"{scores['seconds'] / reference['seconds']:>10.1f}", flush=True)
        results["datasets"][name] = {"counts": counts, "duplicates": vars(duplicates), "models": rows}
        reference, *_, ours = rows.values()  # the first row and charrnn's, the last
        verdicts.add(f"charrnn on {name}", None,
                     f"macro-F1 {ours['macro_f1']:.3f} = {ours['macro_f1'] / reference['macro_f1']:.3f}x the "
                     f"reference's, in {ours['seconds'] / reference['seconds']:.1f}x its time")
    results["verdicts"] = verdicts.records()
    print()
    write_results(results, results_path("classify", args.results))
    return verdicts.finish()


if __name__ == "__main__":
    sys.exit(main())
