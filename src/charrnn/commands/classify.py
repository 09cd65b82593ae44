"""``charrnn classify train|predict``: classify whole texts (names, words, lines) by their characters.

A thin layer over :func:`charrnn.classification.train_and_evaluate` and
:func:`charrnn.classification.load_classifier`.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from charrnn.cells import CELL_TYPES
from charrnn.checks import integer_at_least, non_negative_int, number_in, positive_int
from charrnn.commands import add_machine_arguments
from charrnn.devices import num_threads, select_device
from charrnn.errors import CharRNNError
from charrnn.files import open_text


def add_parser(subparsers) -> None:
    """Register ``charrnn classify`` with its ``train`` and ``predict`` subcommands."""
    from charrnn.classification.model import POOLINGS
    from charrnn.classification.train import CLASSIFIER_READING as reading
    from charrnn.classification.train import CLASSIFIER_SHAPE as shape
    from charrnn.classification.train import LOGIT_ADJUSTMENTS, TrainingOptions
    from charrnn.training.schedule import DECAYS

    defaults = TrainingOptions()
    parser = subparsers.add_parser(
        "classify", help="classify texts by their characters (train, predict)",
        description="Character-level sequence classification with stratified evaluation.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    train = actions.add_parser(
        "train", help="evaluate and train a classifier",
        description="Train a classifier on DATA: a folder of <label>.txt files (one example per "
                    "line) or a CSV/TSV file. Scores come from stratified K-fold cross-validation "
                    "(--cv K; the saved model is then trained on all the data) or a stratified "
                    "hold-out (--test-size; the saved model is the one trained on the train side). "
                    "Copies of the same text always stay on one side of a split. --out receives "
                    "the model (config.json, vocab.json, labels.json, model.safetensors), "
                    "report.txt, evaluation.json, confusion.txt and confusion.png.")
    train.add_argument("data", metavar="DATA", help="folder of <label>.txt files, or a .csv/.tsv file")
    train.add_argument("--out", metavar="DIR", help="output folder (default: runs/classify-<DATA name>)")
    train.add_argument("--text-column", default="text", help="CSV/TSV column holding the texts (default: text)")
    train.add_argument("--label-column", default="label", help="CSV/TSV column holding the labels (default: label)")
    split = train.add_mutually_exclusive_group()
    split.add_argument("--cv", type=integer_at_least(2), metavar="K",
                       help="stratified K-fold cross-validation (K >= 2 folds)")
    split.add_argument("--test-size", type=number_in(0.0, 1.0, low_open=True, high_open=True), default=0.2,
                       metavar="F",
                       help="share of the distinct texts held out for testing when --cv is not given (default: 0.2)")
    default_weight = defaults.class_weight or "none"
    train.add_argument("--class-weight", choices=["balanced", "none"], default=None,
                       help="balanced: weight each class's loss by n / (classes · class size) "
                            f"(default: {default_weight}, or none with --balanced-sampler)")
    train.add_argument("--balanced-sampler", action="store_true",
                       help="draw training batches with every class equally likely (instead of class weights, "
                            "unless --class-weight is given)")
    train.add_argument("--cell", choices=sorted(CELL_TYPES), default=shape.cell,
                       help=f"cell type (default: {shape.cell}; gru-reset-after is the fast GRU)")
    train.add_argument("--hidden-size", type=positive_int, default=shape.hidden_size, metavar="N",
                       help=f"units per layer (default: {shape.hidden_size})")
    train.add_argument("--num-layers", type=positive_int, default=shape.num_layers, metavar="N",
                       help=f"stacked layers (default: {shape.num_layers})")
    train.add_argument("--embedding-size", type=positive_int, default=shape.embedding_size, metavar="N",
                       help=f"character embedding size (default: {shape.embedding_size})")
    train.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=reading["bidirectional"],
                       help="a second stack reads each text backwards, within its own length "
                            f"(default: {'on' if reading['bidirectional'] else 'off'})")
    train.add_argument("--ensemble", type=positive_int, default=reading["ensemble"], metavar="K",
                       help="train K networks side by side (different initial weights, same batches) and average "
                            f"their probabilities (default: {reading['ensemble']})")
    train.add_argument("--pooling", type=_pooling, default=reading["pooling"], metavar="KIND",
                       help=f"what the output layer reads: {', '.join(POOLINGS)} over the valid positions, "
                            f"or several joined by '+' (default: {reading['pooling']})")
    train.add_argument("--dropout", type=number_in(0.0, 1.0, high_open=True), default=shape.dropout,
                       help=f"dropout between layers and before the output (default: {shape.dropout:g})")
    train.add_argument("--epochs", type=positive_int, default=defaults.epochs,
                       help=f"passes over the training texts (default: {defaults.epochs})")
    train.add_argument("--batch-size", type=positive_int, default=defaults.batch_size, metavar="N",
                       help=f"texts per batch (default: {defaults.batch_size})")
    train.add_argument("--learning-rate", type=float, default=defaults.learning_rate, metavar="RATE",
                       help=f"Adam's peak learning rate (default: {defaults.learning_rate:g})")
    train.add_argument("--decay", choices=DECAYS, default=defaults.decay,
                       help=f"learning-rate decay to a tenth of the peak (default: {defaults.decay})")
    train.add_argument("--weight-decay", type=float, default=defaults.weight_decay, metavar="W",
                       help="decoupled weight decay (AdamW) when above 0 (default: 0)")
    train.add_argument("--grad-clip", type=float, default=defaults.grad_clip, metavar="NORM",
                       help=f"clip the gradient's global norm (0: off; default: {defaults.grad_clip:g})")
    train.add_argument("--validation-fraction", type=number_in(0.0, 1.0, high_open=True),
                       default=defaults.validation_fraction, metavar="F",
                       help="share of each training side held out to choose the epoch kept and tau; never the "
                            f"test side (0: keep the last epoch; default: {defaults.validation_fraction:g})")
    train.add_argument("--patience", type=positive_int, default=defaults.patience, metavar="N",
                       help="stop after N epochs without a better validation score (default: run every epoch)")
    train.add_argument("--logit-adjustment", choices=LOGIT_ADJUSTMENTS, default=defaults.logit_adjustment,
                       help="post-hoc: predict from logits - tau*log(prior), tau chosen on the validation split; "
                            f"loss: the logit-adjusted loss (default: {defaults.logit_adjustment})")
    train.add_argument("--tau", type=number_in(), default=defaults.tau, metavar="T",
                       help="tau of the logit adjustment (default: chosen on the validation split for post-hoc, "
                            "1 for loss)")
    train.add_argument("--select-epoch", action=argparse.BooleanOptionalAction, default=defaults.select_epoch,
                       help="keep the epoch with the best validation score; --no-select-epoch keeps the last one "
                            "and lets the validation split choose tau and the n-gram weight only "
                            f"(default: {'on' if defaults.select_epoch else 'off'})")
    train.add_argument("--ngrams", action=argparse.BooleanOptionalAction, default=defaults.ngrams,
                       help="blend the RNN with a logistic regression on TF-IDF character n-grams (char_wb 2-5, "
                            "C=10; the blend's weight chosen on the validation split or on --cross-fit's out-of-fold "
                            f"scores) (default: {'on' if defaults.ngrams else 'off'})")
    train.add_argument("--ngram-search", action=argparse.BooleanOptionalAction, default=defaults.ngram_search,
                       help="choose the n-gram model's analyzer (char, char_wb), n-gram range (1-4, 2-5) and C (1, "
                            "10) by a 3-fold cross-validation of the RNN's training texts "
                            f"(default: {'on' if defaults.ngram_search else 'off'})")
    train.add_argument("--ngram-weight", type=number_in(0.0, 1.0), default=defaults.ngram_weight, metavar="W",
                       help="weight w of the n-gram model in the blend (1-w)*log p_rnn/T_rnn + w*log p_ngram/T_ngram, "
                            "each part calibrated by a temperature T fitted where w is chosen (default: "
                            "chosen on the validation split or out-of-fold scores, 0.5 without either)")
    train.add_argument("--cross-fit", type=_cross_fit, default=defaults.cross_fit, metavar="K",
                       help="train K networks, each without one of K folds of the training side; choose tau and the "
                            "n-gram weight on every text's score by the network that did not see it; predict with "
                            "the K networks together (instead of --validation-fraction; 0: off; default: "
                            f"{defaults.cross_fit})")
    train.add_argument("--seed", type=non_negative_int, default=defaults.seed,
                       help=f"random seed for splits and training (default: {defaults.seed})")
    add_machine_arguments(train)
    train.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    train.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    train.set_defaults(run=run_train)

    predict = actions.add_parser(
        "predict", help="label texts with a trained classifier",
        description="Print the top-k labels of each text with their probabilities: one line per "
                    "text, TEXT<tab>LABEL PROBABILITY<tab>... With --output, write CSV instead "
                    "(text,label,p_<class>...), reading --file a chunk at a time, so files of any size fit.")
    predict.add_argument("checkpoint", metavar="CHECKPOINT", help="folder written by 'charrnn classify train'")
    predict.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    predict.add_argument("--file", metavar="F", help="also classify each non-blank line of F ('-': standard input)")
    predict.add_argument("--top-k", type=positive_int, default=3, metavar="K",
                         help="labels to show per text (default: 3, at most the number of classes)")
    predict.add_argument("--output", metavar="OUT",
                         help="write CSV (text, label, one probability column per class) to OUT ('-': standard "
                              "output), streaming --file")
    predict.add_argument("--batch-size", type=positive_int, default=256, metavar="N",
                         help="texts per forward pass (default: 256)")
    add_machine_arguments(predict)
    predict.set_defaults(run=run_predict)


def _pooling(text: str) -> str:
    """argparse type of ``--pooling``: the same check (and words) as the library's."""
    from charrnn.classification.model import parse_pooling
    from charrnn.errors import SettingError

    try:
        parse_pooling(text)
    except SettingError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--pooling ")) from None
    return text


def _cross_fit(text: str) -> int:
    """argparse type of ``--cross-fit``: 0, or a number of folds >= 2."""
    try:
        folds = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 0 (off) or a number of folds >= 2, got {text!r}") from None
    if folds < 0 or folds == 1:
        raise argparse.ArgumentTypeError(f"must be 0 (off) or a number of folds >= 2, got {folds}")
    return folds


def run_train(args) -> int:
    """Evaluate, train and save a classifier; print the report."""
    from charrnn.classification import TrainingOptions, load_dataset, train_and_evaluate

    class_weight = args.class_weight or ("none" if args.balanced_sampler else TrainingOptions().class_weight or "none")
    options = TrainingOptions(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                              decay=args.decay, weight_decay=args.weight_decay, grad_clip=args.grad_clip,
                              class_weight=None if class_weight == "none" else class_weight,
                              balanced_sampler=args.balanced_sampler, validation_fraction=args.validation_fraction,
                              patience=args.patience, logit_adjustment=args.logit_adjustment, tau=args.tau,
                              select_epoch=args.select_epoch, ngrams=args.ngrams,
                              ngram_search=args.ngram_search, ngram_weight=args.ngram_weight,
                              cross_fit=args.cross_fit,
                              seed=args.seed, device=args.device)
    select_device(args.device)  # before any data is read
    data = load_dataset(args.data, args.text_column, args.label_column)
    out = Path(args.out) if args.out else Path("runs") / f"classify-{Path(args.data).resolve().stem}"
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    if log is not None:
        counts = ", ".join(f"{label} {count}" for label, count in data.class_counts().items())
        log(f"{args.data}: {len(data)} texts in {len(data.classes)} classes ({counts})")
    with num_threads(args.threads):
        report = train_and_evaluate(data, out, cv=args.cv, test_size=args.test_size, options=options, log=log,
                                    overwrite=args.overwrite, cell=args.cell, hidden_size=args.hidden_size,
                                    num_layers=args.num_layers, embedding_size=args.embedding_size,
                                    dropout=args.dropout, bidirectional=args.bidirectional, pooling=args.pooling,
                                    ensemble=args.ensemble)
    print(report.format())
    print(f"saved to {out}/ (report.txt, evaluation.json, confusion.txt, confusion.png, model files)")
    return 0


def _read_lines(name: str) -> list[str]:
    return list(_iter_lines(name))


def _iter_lines(name: str):
    """The stripped non-blank lines of file ``name`` ('-': standard input), read as they are needed."""
    if name == "-":
        handle = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", newline=None)
    else:
        handle = open_text(name)
    try:
        number = 0
        for number, line in enumerate(handle, start=1):
            line = line.strip()
            if line:
                yield line
    except UnicodeDecodeError as error:
        raise CharRNNError(f"{name}: not UTF-8 text (line {number + 1}: {error.reason})") from None
    finally:
        if name == "-":
            handle.detach()  # standard input stays open for whoever reads it next
        else:
            handle.close()


def run_predict(args) -> int:
    """Print each text's top-k labels, or write every text's label and probabilities as CSV."""
    from charrnn.classification import load_classifier

    device = select_device(args.device)
    texts = list(args.texts)
    for position, text in enumerate(texts, start=1):
        if not text.strip():
            raise CharRNNError(f"TEXT {position} is empty: nothing to classify")
    if not texts and not args.file:
        raise CharRNNError("nothing to classify: give TEXT arguments or --file")
    classifier = load_classifier(args.checkpoint, device)
    if args.output is not None:
        return _write_csv(classifier, texts, args)
    if args.file:
        texts += _read_lines(args.file)
    if not texts:
        raise CharRNNError("nothing to classify: give TEXT arguments or --file")
    _note_unknown(classifier.unknown_characters(texts))
    with num_threads(args.threads):
        best_labels = classifier.top_k(texts, args.top_k, batch_size=args.batch_size)
    for text, best in zip(texts, best_labels):
        print("\t".join([text, *(f"{label} {probability:.4f}" for label, probability in best)]))
    return 0


def _note_unknown(unknown: list[str]) -> None:
    if unknown:
        print(f"charrnn: note: {len(unknown)} character(s) never seen in training, read as unknown: "
              + " ".join(repr(char) for char in unknown[:20]), file=sys.stderr)


def _write_csv(classifier, texts: list[str], args) -> int:
    """``--output``: the TEXT arguments, then ``--file`` line by line, as CSV rows."""
    import itertools

    from charrnn.classification.predict import write_predictions_csv
    from charrnn.files import atomic_stream

    unknown: dict[str, None] = {}

    def watched(stream):
        for text in stream:
            for char in classifier.vocabulary.unknown_characters(text):
                unknown.setdefault(char, None)
            yield text

    stream = watched(itertools.chain(texts, _iter_lines(args.file) if args.file else ()))
    with num_threads(args.threads):
        if args.output == "-":
            count = write_predictions_csv(classifier, stream, sys.stdout, batch_size=args.batch_size)
        else:
            with atomic_stream(args.output) as binary:
                handle = io.TextIOWrapper(binary, encoding="utf-8", newline="")
                count = write_predictions_csv(classifier, stream, handle, batch_size=args.batch_size)
                handle.flush()
                handle.detach()
    _note_unknown(list(unknown))
    if args.output != "-":
        print(f"{count} texts labelled: {args.output}", file=sys.stderr)
    return 0
