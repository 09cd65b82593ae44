"""GPU check of issue 3: one short script (under 3 minutes on an H100 / H200).

Usage::

    PYTHONPATH=src python bench/gpu_check.py [--device auto|cuda|cpu] [--out FILE.json]

Checks, each printed PASS / FAIL with its numbers, then a summary:

1. ``parity``: the fused cuDNN path equals the step-by-step path for ``lstm``, ``rnn`` and
   ``gru-reset-after`` (one cell and a 2-layer stack), with and without ``sequence_length``
   and an initial state, in float32 with TF32 OFF. Tolerance: outputs and final states within
   1e-5 (absolute); gradients of the inputs, initial state and weights within 1e-5 of each
   gradient's largest magnitude (absolute below 1).
2. ``autocast``: training steps under bf16 autocast (and fp16 with its gradient scaler) run
   through :func:`charrnn.training.train` and the training loss decreases.
3. ``gpu-to-cpu``: the checkpoint that bf16 run wrote on the GPU loads on the CPU
   (``map_location="cpu"``), samples there, and evaluates to the GPU's loss (1e-4).
4. ``speed``: training characters/s on the GPU of a 2x512 LSTM, batch 64, sequence 128:
   our trainer's step (float32 and bf16 autocast) and a bare ``nn.LSTM`` loop (float32),
   with the ratio. No target: the figure is reported.

Without CUDA each check prints "SKIP (no CUDA)" and the script exits 0; ``--device cpu``
runs the same checks on the CPU instead (a dry run of the script itself: the parity then
exercises oneDNN, and the autocast runs train in float32, since ``--amp`` needs CUDA).
The exit status is 1 when any check fails.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path

import common

import torch
from torch import nn
from torch.nn import functional as F

from charrnn.cells import MultiRNNCell, make_cell
from charrnn.checkpoint import load_model
from charrnn.corpus import PreparedCorpus
from charrnn.evaluation import evaluate
from charrnn.sampling import make_generator, sample_text
from charrnn.training import TrainConfig, language_model_trainer, train
from charrnn.unroll import dynamic_rnn, flatten_state, rebuild_state

FORWARD_TOLERANCE = 1e-5
GRADIENT_TOLERANCE = 1e-5
CHECKS = ["parity", "autocast", "gpu-to-cpu", "speed"]


# -- 1. fused == step ----------------------------------------------------------------------------
def _run_both(cell_type: str, layers: int, use_lengths: bool, use_state: bool, device) -> dict:
    """Max differences between the fused and the step path, forward and backward."""
    torch.manual_seed(0)
    batch, steps, depth, units = 5, 23, 7, 32
    cells = [make_cell(cell_type, units, depth if layer == 0 else units) for layer in range(layers)]
    cell = (MultiRNNCell(cells) if layers > 1 else cells[0]).to(device)
    inputs = torch.randn(batch, steps, depth, device=device, requires_grad=True)  # (B, T, D)
    lengths = torch.tensor([23, 5, 0, 17, 1], device=device) if use_lengths else None
    state = cell.zero_state(batch, torch.float32, device)
    if use_state:
        state = rebuild_state(state, [torch.randn_like(leaf).requires_grad_(True) for leaf in flatten_state(state)])
    results = {}
    for fused in (True, False):
        for parameter in [inputs, *cell.parameters(), *(flatten_state(state) if use_state else [])]:
            parameter.grad = None
        outputs, final = dynamic_rnn(cell, inputs, sequence_length=lengths, initial_state=state, fused=fused)
        weights = torch.linspace(-1, 1, outputs.numel(), device=device).view_as(outputs)
        final_leaves = flatten_state(final)
        loss = (outputs * weights).sum() + sum((leaf * (index + 1)).sum() for index, leaf in enumerate(final_leaves))
        loss.backward()
        gradients = [inputs.grad] + [parameter.grad for parameter in cell.parameters()]
        if use_state:
            gradients += [leaf.grad for leaf in flatten_state(state)]
        results[fused] = ([outputs.detach()] + [leaf.detach() for leaf in final_leaves],
                          [torch.zeros(()) if gradient is None else gradient.detach() for gradient in gradients])
    forward = max(float((a - b).abs().max()) for a, b in zip(results[True][0], results[False][0]))
    # Weight gradients sum over B x T terms and reach hundreds: compare them to their own scale.
    backward = max(float((a - b).abs().max()) / max(1.0, float(b.abs().max()))
                   for a, b in zip(results[True][1], results[False][1]))
    return {"forward": forward, "backward": backward}


def check_parity(device) -> dict:
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rows, worst = [], {"forward": 0.0, "backward": 0.0}
    for cell_type in ("lstm", "rnn", "gru-reset-after"):
        for layers in (1, 2):
            for use_lengths in (False, True):
                for use_state in (False, True):
                    difference = _run_both(cell_type, layers, use_lengths, use_state, device)
                    rows.append({"cell": cell_type, "layers": layers, "sequence_length": use_lengths,
                                 "initial_state": use_state, **difference})
                    worst["forward"] = max(worst["forward"], difference["forward"])
                    worst["backward"] = max(worst["backward"], difference["backward"])
    passed = worst["forward"] <= FORWARD_TOLERANCE and worst["backward"] <= GRADIENT_TOLERANCE
    cudnn = torch.backends.cudnn.version() if device.type == "cuda" else None
    detail = (f"{len(rows)} cases (3 cells x 1-2 layers x lengths x initial state), TF32 off, cuDNN {cudnn}: "
              f"max |fused - step| forward {worst['forward']:.2e} (tol {FORWARD_TOLERANCE:g}), "
              f"gradients {worst['backward']:.2e} of their scale (tol {GRADIENT_TOLERANCE:g})")
    return {"pass": passed, "detail": detail, "rows": rows}


# -- 2. autocast training, 3. GPU checkpoint on the CPU -----------------------------------------------
def _corpus(folder: Path) -> Path:
    lines = [f"{name} said to {other}: the {thing} is in the {place}.\n"
             for name in ("anna", "bert", "carl", "dora") for other in ("eve", "finn", "gus")
             for thing in ("cat", "key", "map") for place in ("box", "hall", "yard")]
    path = folder / "corpus.txt"
    path.write_text("".join(lines * 12), encoding="utf-8")
    return path


def _train_losses(run_dir: Path) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [record["train_loss"] for record in records if record.get("train_loss") is not None]


def check_autocast(device, work: Path) -> dict:
    corpus = _corpus(work)
    rows = {}
    for amp in ("bf16", "fp16"):
        settings = TrainConfig(hidden_size=128, embedding_size=32, sequence_length=64, batch_size=32,
                               max_steps=120, eval_every=60, log_every=10, warmup_steps=10,
                               device=device.type, amp=amp if device.type == "cuda" else "none",
                               learning_rate=5e-3)
        run_dir = work / f"run-{amp}"
        result = train(settings, [corpus], run_dir, progress=False)
        losses = _train_losses(run_dir)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16,
                            enabled=device.type == "cuda"):
            model = load_model(run_dir, map_location=device).model
            logits, _ = model(torch.zeros(2, 8, dtype=torch.long, device=device))
        expected_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp] if device.type == "cuda" else torch.float32
        rows[amp] = {"first_loss": losses[0], "last_loss": losses[-1], "val_loss": result.val_loss,
                     "stop_reason": result.stop_reason, "logits_dtype": str(logits.dtype),
                     "autocast_active": logits.dtype == expected_dtype,
                     "decreased": all(math.isfinite(loss) for loss in losses) and losses[-1] < 0.7 * losses[0]}
    passed = all(row["decreased"] and row["autocast_active"] and row["stop_reason"] == "max_steps"
                 for row in rows.values())
    detail = "; ".join(f"{amp}: train loss {row['first_loss']:.3f} -> {row['last_loss']:.3f}, val {row['val_loss']:.3f}, "
                       f"logits {row['logits_dtype']}" for amp, row in rows.items())
    return {"pass": passed, "detail": detail, "rows": rows}


def check_gpu_to_cpu(device, work: Path) -> dict:
    run_dir = work / "run-bf16"
    on_cpu = load_model(run_dir, map_location="cpu")
    on_device = load_model(run_dir, map_location=device)
    text = sample_text(on_cpu.model, on_cpu.vocabulary, prime="anna said", length=200, generator=make_generator(0))
    greedy_cpu = sample_text(on_cpu.model, on_cpu.vocabulary, prime="anna said", length=60, greedy=True)
    _, val_ids = PreparedCorpus.open(run_dir / "data").split(0.1)
    loss_cpu = evaluate(on_cpu.model, val_ids, batch_size=8, sequence_length=64).loss
    loss_device = evaluate(on_device.model, val_ids, batch_size=8, sequence_length=64, device=device).loss
    greedy_device = sample_text(on_device.model, on_device.vocabulary, prime="anna said", length=60, greedy=True)
    parameter_device = next(on_cpu.model.parameters()).device.type
    passed = (len(text) == 200 and parameter_device == "cpu" and abs(loss_cpu - loss_device) <= 1e-4)
    detail = (f"loaded on {parameter_device}; 200 characters sampled; val loss CPU {loss_cpu:.5f} vs "
              f"{device.type} {loss_device:.5f} (|diff| {abs(loss_cpu - loss_device):.1e}, tol 1e-4); "
              f"greedy on CPU {greedy_cpu!r}, same on {device.type}: {greedy_cpu == greedy_device}")
    return {"pass": passed, "detail": detail, "sample": text}


# -- 4. speed --------------------------------------------------------------------------------------
def _synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rate(step, device, batch: int, length: int, steps: int) -> float:
    for _ in range(min(3, steps)):
        step()
    _synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize(device)
    return steps * batch * length / (time.perf_counter() - start)


def check_speed(device, work: Path, steps: int) -> dict:
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's default for speed
    batch, length, hidden = 64, 128, 512
    corpus_path = _corpus(work)
    corpus = PreparedCorpus.open(work / "run-bf16" / "data") if (work / "run-bf16" / "data").exists() else None
    if corpus is None:
        from charrnn.corpus import prepare_corpus
        corpus = prepare_corpus([corpus_path], work / "speed-corpus")
    rates = {}
    for amp in ("none", "bf16"):
        settings = TrainConfig(hidden_size=hidden, sequence_length=length, batch_size=batch, device=device.type,
                               amp=amp if device.type == "cuda" else "none", max_steps=10**6, eval_every=10**6,
                               val_fraction=0.02)
        trainer = language_model_trainer(settings, corpus, device=device)

        def our_step(trainer=trainer):
            trainer.advance(1)
        rates[f"charrnn_{amp}"] = _rate(our_step, device, batch, length, steps)

    torch.manual_seed(0)
    vocab = corpus.vocabulary.size
    embedding, lstm, head = nn.Embedding(vocab, 64).to(device), nn.LSTM(64, hidden, 2, batch_first=True).to(device), \
        nn.Linear(hidden, vocab).to(device)
    optimizer = torch.optim.Adam([*embedding.parameters(), *lstm.parameters(), *head.parameters()], lr=3e-3)
    x = torch.randint(0, vocab, (batch, length), device=device)
    y = torch.randint(0, vocab, (batch, length), device=device)
    carried = [None]

    def bare_step():
        outputs, state = lstm(embedding(x), carried[0])  # (B, T, H)
        carried[0] = tuple(tensor.detach() for tensor in state)
        loss = F.cross_entropy(head(outputs).reshape(-1, vocab), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()
    rates["bare_none"] = _rate(bare_step, device, batch, length, steps)
    ratio = rates["charrnn_none"] / rates["bare_none"]
    detail = (f"2x{hidden} LSTM, batch {batch}, seq {length}: charrnn fp32 {rates['charrnn_none']:,.0f} chars/s, "
              f"charrnn bf16 {rates['charrnn_bf16']:,.0f} chars/s, bare nn.LSTM fp32 {rates['bare_none']:,.0f} "
              f"chars/s; charrnn/bare (fp32) {ratio:.3f}")
    return {"pass": True, "detail": detail, "rates": rates, "ratio": ratio}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--speed-steps", type=int, default=30, help="timed training steps per speed figure")
    common.add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            print("no CUDA: --device cuda asked for, but torch.cuda.is_available() is False")
            return 1
        device = torch.device("cuda")
        print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
              f"cuDNN {torch.backends.cudnn.version()}", flush=True)
    elif args.device == "auto":
        verdicts = common.Verdicts()
        for name in CHECKS:
            verdicts.add(name, None, "SKIP (no CUDA; --device cpu dry-runs the script on the CPU)")
        return verdicts.finish()
    else:
        device = torch.device("cpu")
        print(f"device: CPU (dry run), torch {torch.__version__}", flush=True)

    header = common.print_machine_header()
    verdicts, results = common.Verdicts(), {}
    with tempfile.TemporaryDirectory(prefix="charrnn-gpu-check-") as folder:
        work = Path(folder)
        runners = {"parity": lambda: check_parity(device), "autocast": lambda: check_autocast(device, work),
                   "gpu-to-cpu": lambda: check_gpu_to_cpu(device, work),
                   "speed": lambda: check_speed(device, work, args.speed_steps)}
        for name in CHECKS:
            start = time.perf_counter()
            try:
                results[name] = runners[name]()
            except Exception as error:  # report and go on: one broken check must not hide the others
                results[name] = {"pass": False, "detail": f"{type(error).__name__}: {error}",
                                 "traceback": traceback.format_exc()}
                print(results[name]["traceback"], file=sys.stderr)
            results[name]["seconds"] = round(time.perf_counter() - start, 1)
            passed = None if name == "speed" else results[name]["pass"]  # speed: reported, no target
            verdicts.add(name, passed, f"({results[name]['seconds']} s) {results[name]['detail']}")
    common.write_results({"benchmark": "gpu-check", "device": str(device), "machine": header,
                          "verdicts": verdicts.records(), "results": results},
                         common.results_path("gpu-check", args.results))
    return verdicts.finish()


if __name__ == "__main__":
    sys.exit(main())
