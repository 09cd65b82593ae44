"""The lecture's TensorFlow 1 programs, run by TensorFlow 2.15's ``tf.compat.v1``: the reference.

This file runs under ANOTHER Python, one that has TensorFlow (charrnn does not need it)::

    /work/tfvenv/bin/python bench/tf_reference.py [--programs hihello long-sentence]
        [--rounds 1] [--check-outcomes] [--seeds 0 1 2] [--serve]

It prints one JSON object on stdout (TensorFlow's log lines go to stderr).

The programs are the lecture's, line for line, with the changes that TensorFlow 2.15 forces:

- ``tf.contrib.rnn.*`` -> ``tf.compat.v1.nn.rnn_cell.*`` (the same BasicLSTMCell / MultiRNNCell);
- ``tf.contrib.layers.fully_connected(x, n, activation_fn=None)`` -> ``tf.compat.v1.layers.dense(
  x, n, activation=None)`` (both Glorot-uniform kernel, zero bias, no activation);
- ``tf.contrib.seq2seq.sequence_loss`` -> its formula written out,
  ``sum(ce * w) / (sum(w) + 1e-12)``, which is what contrib computed with both averages on;
- the vocabulary is ``sorted(set(text))`` instead of ``list(set(text))``, whose order changes
  from one Python process to the next; it only permutes the classes;
- seeds (the graph's, and Python's ``random`` that Keras' initialisers draw from) so that a
  run can be repeated;
- the tail the programs share (dense projection, ``sequence_loss``, Adam, argmax) is written
  once, in :func:`lecture_head`, with the lecture's lines.

Modes
-----
``--serve``: read timing requests from stdin, one JSON line each, and answer each with one JSON
line; ``bench/bench_lecture.py`` uses it to alternate TensorFlow's runs with charrnn's.

Timing (default): for each program, build the graph, start a one-thread session
(``intra_op_parallelism_threads = inter_op_parallelism_threads = 1``), initialise, then time the
training loop alone: one ``sess.run`` of the train op (and the loss, and for long-sentence the
outputs, as the lecture fetches them) per iteration, which is the work charrnn's loop does.
``build_seconds`` (graph, session, initialisation) is reported apart; the loop includes the first
run, which also optimises the graph (``first_iteration_seconds``). ``loop_cpu_seconds`` is the
process's CPU time over the loop (all threads): on a loaded machine it moves less than the
wall-clock ``loop_seconds``.

``--check-outcomes``: run each program as the lecture writes it, with the extra prediction
``sess.run`` after every training step, for each ``--seeds`` value, and record the final loss,
the final prediction, and the first iteration whose prediction is the target (for long-sentence:
all but its first character, which the first window cannot know).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

try:
    import tensorflow as tf  # noqa: E402
except ImportError:
    raise SystemExit("tf_reference.py needs TensorFlow 2.15: run it with a Python that has it, e.g. "
                     "/work/tfvenv/bin/python (python3 -m venv /work/tfvenv && "
                     "/work/tfvenv/bin/pip install tensorflow-cpu==2.15.1)") from None

tf1 = tf.compat.v1
tf1.disable_eager_execution()
tf1.logging.set_verbosity(tf1.logging.ERROR)

LONG_SEQUENCE = " if you want you"
LONG_SENTENCE = ("if you want to build a ship, don't drum up people together to "
                 "collect wood and don't assign them tasks and work, but rather "
                 "teach them to long for the endless immensity of the sea.")
ITERATIONS = {"hihello": 2000, "hihello-dense": 2000, "long-sequence": 50, "long-sentence": 500}


def sequence_loss(logits, targets, weights):
    """``tf.contrib.seq2seq.sequence_loss`` with both averages on: ``sum(ce·w) / (sum(w) + 1e-12)``."""
    crossent = tf1.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)  # (B, T)
    return tf1.reduce_sum(crossent * weights) / (tf1.reduce_sum(weights) + 1e-12)


def seed_everything(seed: int) -> None:
    """Seed the default graph AND Python's ``random``, from which Keras' initialisers (behind
    ``BasicLSTMCell`` and ``layers.dense``) draw their op seeds when given none."""
    tf.keras.utils.set_random_seed(seed)  # random, numpy, and the TF seed
    tf1.set_random_seed(seed)


def session():
    """A session on one thread, as charrnn's lecture runs torch on one thread."""
    config = tf1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    return tf1.Session(config=config)


def lecture_head(outputs, Y, batch_size, sequence_length, hidden_size, num_classes, learning_rate, dense=True):
    """The lecture's tail of every graph: the optional dense projection of the RNN outputs,
    ``sequence_loss`` with unit weights, Adam and the argmax prediction.

    Returns ``(outputs, loss, train, prediction)``, ``outputs`` being the logits."""
    if dense:
        X_for_fc = tf1.reshape(outputs, [-1, hidden_size])
        outputs = tf1.layers.dense(X_for_fc, num_classes, activation=None)
        outputs = tf1.reshape(outputs, [batch_size, sequence_length, num_classes])
    weights = tf1.ones([batch_size, sequence_length])
    loss = tf1.reduce_mean(sequence_loss(outputs, Y, weights))
    train = tf1.train.AdamOptimizer(learning_rate=learning_rate).minimize(loss)
    prediction = tf1.argmax(outputs, axis=2)
    return outputs, loss, train, prediction


def build_hihello(dense: bool):
    """The lecture's hihello graph; ``dense`` adds the projection the lecture's 1.58e-05 needs."""
    idx2char = ['h', 'i', 'e', 'l', 'o']
    x_one_hot = [[[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [1, 0, 0, 0, 0],
                  [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 0]]]  # hihell
    y_data = [[1, 0, 2, 3, 3, 4]]  # ihello
    num_classes = input_dim = hidden_size = 5
    batch_size, sequence_length, learning_rate = 1, 6, 0.1

    X = tf1.placeholder(tf.float32, [None, sequence_length, input_dim])
    Y = tf1.placeholder(tf.int32, [None, sequence_length])
    cell = tf1.nn.rnn_cell.BasicLSTMCell(num_units=hidden_size, state_is_tuple=True)
    initial_state = cell.zero_state(batch_size, tf.float32)
    outputs, _states = tf1.nn.dynamic_rnn(cell, X, initial_state=initial_state, dtype=tf.float32)
    outputs, loss, train, prediction = lecture_head(outputs, Y, batch_size, sequence_length, hidden_size,
                                                    num_classes, learning_rate, dense)
    return {"X": X, "Y": Y, "loss": loss, "train": train, "prediction": prediction,
            "fetch": [loss, train], "feed_x": x_one_hot, "feed_y": y_data,
            "decode": lambda ids: "".join(idx2char[c] for c in np.squeeze(ids)), "target": "ihello"}


def build_long_sequence():
    """The lecture's long-sequence graph: ``' if you want you'``, LSTM + dense."""
    sample = LONG_SEQUENCE
    idx2char = sorted(set(sample))
    char2idx = {c: i for i, c in enumerate(idx2char)}
    num_classes = hidden_size = len(char2idx)
    batch_size, sequence_length, learning_rate = 1, len(sample) - 1, 0.1
    sample_idx = [char2idx[c] for c in sample]
    x_data, y_data = [sample_idx[:-1]], [sample_idx[1:]]

    X = tf1.placeholder(tf.int32, [None, sequence_length])
    Y = tf1.placeholder(tf.int32, [None, sequence_length])
    x_one_hot = tf1.one_hot(X, num_classes)
    cell = tf1.nn.rnn_cell.BasicLSTMCell(num_units=hidden_size, state_is_tuple=True)
    initial_state = cell.zero_state(batch_size, tf.float32)
    outputs, _states = tf1.nn.dynamic_rnn(cell, x_one_hot, initial_state=initial_state, dtype=tf.float32)
    outputs, loss, train, prediction = lecture_head(outputs, Y, batch_size, sequence_length, hidden_size,
                                                    num_classes, learning_rate)
    return {"X": X, "Y": Y, "loss": loss, "train": train, "prediction": prediction,
            "fetch": [loss, train], "feed_x": x_data, "feed_y": y_data,
            "decode": lambda ids: "".join(idx2char[c] for c in np.squeeze(ids)), "target": sample[1:]}


def build_long_sentence():
    """The lecture's really long sentence: 170 windows of 10, 2-layer LSTM stack + dense."""
    sentence = LONG_SENTENCE
    char_set = sorted(set(sentence))
    char_dic = {w: i for i, w in enumerate(char_set)}
    data_dim = hidden_size = num_classes = len(char_set)
    sequence_length, learning_rate = 10, 0.1
    dataX, dataY = [], []
    for i in range(0, len(sentence) - sequence_length):
        dataX.append([char_dic[c] for c in sentence[i:i + sequence_length]])
        dataY.append([char_dic[c] for c in sentence[i + 1:i + sequence_length + 1]])
    batch_size = len(dataX)
    assert data_dim == num_classes

    X = tf1.placeholder(tf.int32, [None, sequence_length])
    Y = tf1.placeholder(tf.int32, [None, sequence_length])
    X_one_hot = tf1.one_hot(X, num_classes)
    multi_cells = tf1.nn.rnn_cell.MultiRNNCell(
        [tf1.nn.rnn_cell.BasicLSTMCell(hidden_size, state_is_tuple=True) for _ in range(2)],
        state_is_tuple=True)
    outputs, _states = tf1.nn.dynamic_rnn(multi_cells, X_one_hot, dtype=tf.float32)
    outputs, mean_loss, train_op, prediction = lecture_head(outputs, Y, batch_size, sequence_length, hidden_size,
                                                            num_classes, learning_rate)

    def decode(ids):
        # The lecture's read-back: the first window whole, then each later window's last char.
        rows = np.asarray(ids)
        return "".join(char_set[t] for t in rows[0]) + "".join(char_set[row[-1]] for row in rows[1:])

    # The lecture fetches the outputs with the train op in one run: no extra forward pass.
    return {"X": X, "Y": Y, "loss": mean_loss, "train": train_op, "prediction": prediction,
            "fetch": [train_op, mean_loss, outputs], "feed_x": dataX, "feed_y": dataY,
            "decode": decode, "target": sentence[1:],
            # The first window has seen only "i": its next character is ambiguous.
            "matches": lambda text, target: len(text) == len(target) and text[1:] == target[1:]}


def build(program: str):
    """The graph pieces of ``program`` in the current default graph."""
    if program in ("hihello", "hihello-dense"):
        return build_hihello(dense=program == "hihello-dense")
    if program == "long-sequence":
        return build_long_sequence()
    if program == "long-sentence":
        return build_long_sentence()
    raise SystemExit(f"tf_reference.py: unknown program {program!r}; expected one of {list(ITERATIONS)}")


def time_program(program: str, seed: int, iterations: int) -> dict:
    """Build ``program``, then time ``iterations`` training runs (nothing else in the loop)."""
    start = time.perf_counter()
    graph = tf1.Graph()
    with graph.as_default():
        seed_everything(seed)
        parts = build(program)
        sess = session()
        sess.run(tf1.global_variables_initializer())
    build_seconds = time.perf_counter() - start
    feed = {parts["X"]: parts["feed_x"], parts["Y"]: parts["feed_y"]}
    fetch = parts["fetch"]
    start, cpu_start = time.perf_counter(), time.process_time()
    first_iteration_seconds = None
    for _ in range(iterations):
        sess.run(fetch, feed_dict=feed)
        if first_iteration_seconds is None:
            # The first run also optimises the graph (Grappler) and creates the kernels.
            first_iteration_seconds = time.perf_counter() - start
    loop_seconds = time.perf_counter() - start
    loop_cpu_seconds = time.process_time() - cpu_start
    final_loss, prediction = sess.run([parts["loss"], parts["prediction"]], feed_dict=feed)
    sess.close()
    return {"build_seconds": build_seconds, "loop_seconds": loop_seconds,
            "loop_cpu_seconds": loop_cpu_seconds, "first_iteration_seconds": first_iteration_seconds,
            "iterations": iterations,
            "final_loss": float(final_loss), "prediction": parts["decode"](prediction)}


def check_outcome(program: str, seed: int, iterations: int) -> dict:
    """Run ``program`` as the lecture writes it: train, then predict, every iteration."""
    graph = tf1.Graph()
    with graph.as_default():
        seed_everything(seed)
        parts = build(program)
        sess = session()
        sess.run(tf1.global_variables_initializer())
    feed = {parts["X"]: parts["feed_x"], parts["Y"]: parts["feed_y"]}
    matches = parts.get("matches", str.__eq__)
    first_correct, losses = None, []
    start = time.perf_counter()
    for i in range(iterations):
        l, _ = sess.run([parts["loss"], parts["train"]], feed_dict=feed)
        result = sess.run(parts["prediction"], feed_dict={parts["X"]: parts["feed_x"]})
        losses.append(float(l))
        if first_correct is None and matches(parts["decode"](result), parts["target"]):
            first_correct = i
    seconds = time.perf_counter() - start
    text = parts["decode"](result)
    sess.close()
    return {"seed": seed, "iterations": iterations, "final_loss": losses[-1], "min_loss": min(losses),
            "prediction": text, "target": parts["target"], "correct": matches(text, parts["target"]),
            "differing_positions": [i for i, (a, b) in enumerate(zip(text, parts["target"])) if a != b][:10],
            "first_correct_iteration": first_correct, "seconds_as_written": seconds,
            "loss_trace_head": losses[:20]}


def serve(requests, replies) -> int:
    """Time programs on request, so that a caller can alternate with its own runs.

    Each request is a JSON line ``{"program": ..., "seed": 0, "iterations": null}``; each reply
    is :func:`time_program`'s result as one JSON line (or ``{"error": ...}``). TensorFlow is
    imported once, so a request costs only its own graph and loop.
    """
    replies.write(json.dumps({"ready": True, "tensorflow": tf.__version__}) + "\n")
    replies.flush()
    for line in requests:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            program = request["program"]
            if program not in ITERATIONS:
                raise ValueError(f"unknown program {program!r}; expected one of {list(ITERATIONS)}")
            result = time_program(program, int(request.get("seed", 0)),
                                  int(request.get("iterations") or ITERATIONS[program]))
        except (ValueError, KeyError, TypeError) as error:
            result = {"error": str(error)}
        replies.write(json.dumps(result) + "\n")
        replies.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", nargs="+", default=["hihello", "long-sequence", "long-sentence"],
                        choices=list(ITERATIONS))
    parser.add_argument("--rounds", type=int, default=1, help="timed runs of each program (default: 1)")
    parser.add_argument("--seed", type=int, default=0, help="graph seed of the timed runs")
    parser.add_argument("--iterations", type=int, help="override the lecture's iteration counts")
    parser.add_argument("--check-outcomes", action="store_true",
                        help="run as written (predict after each step) and report outcomes per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds for --check-outcomes")
    parser.add_argument("--serve", action="store_true",
                        help="answer timing requests, one JSON line in, one out, until end of input")
    args = parser.parse_args(argv)
    if args.serve:
        return serve(sys.stdin, sys.stdout)

    report = {"tensorflow": tf.__version__, "threads": {"intra_op": 1, "inter_op": 1},
              "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)")}
    if args.check_outcomes:
        report["outcomes"] = {
            program: [check_outcome(program, seed, args.iterations or ITERATIONS[program])
                      for seed in args.seeds]
            for program in args.programs}
    else:
        report["timings"] = {
            program: [time_program(program, args.seed, args.iterations or ITERATIONS[program])
                      for _ in range(args.rounds)]
            for program in args.programs}
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
