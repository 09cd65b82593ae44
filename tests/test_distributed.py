"""Distributed training: 2 CPU processes under torchrun match 1 process with the same global batch."""

import json
import random
import subprocess
import sys

import pytest
import torch

from charrnn.devices import select_device
from charrnn.training.distributed import DistributedContext, broadcast_json, detect_context, gather_tensors
from charrnn.errors import CharRNNError
from charrnn.files import load_tensors
from charrnn.training import train
from charrnn.training.settings import TrainConfig

# float32: bfloat16's products round differently for a batch of 4 and one of 8, so only
# float32 lets two processes match one to 1e-5.
# No dropout: each process draws its own masks, so only a run without it can match one process's.
MODEL = dict(hidden_size=16, embedding_size=8, sequence_length=16, eval_every=3, log_every=1,
             eval_characters=0, warmup_steps=2, max_steps=6, num_threads=1, amp="none", dropout=0.0)


def test_context_from_torchrun_environment():
    assert detect_context({}) == DistributedContext(0, 1, 0, 1)
    context = detect_context({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert (context.rank, context.world_size, context.local_rank, context.is_main, context.is_distributed) == \
        (3, 4, 1, False, True)
    with pytest.raises(CharRNNError, match="RANK=5 with WORLD_SIZE=2"):
        detect_context({"RANK": "5", "WORLD_SIZE": "2"})


def test_lone_process_helpers_are_identities():
    context = DistributedContext()
    assert select_device("cpu", context.local_rank) == torch.device("cpu")
    assert broadcast_json({"a": [1]}, context, torch.device("cpu")) == {"a": [1]}
    tensors = {"x": torch.arange(3)}
    assert torch.equal(gather_tensors(tensors, context, torch.device("cpu"))[0]["x"], tensors["x"])
    if not torch.cuda.is_available():
        with pytest.raises(CharRNNError, match="--device cuda: no CUDA device"):
            select_device("cuda", context.local_rank)


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    rng = random.Random(2)
    words = "all the world is a stage and all the men and women merely players".split()
    corpus = tmp_path / "text.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words) for _ in range(10)) for _ in range(60)))

    flags = [f"--{name.replace('_', '-')}={value}" for name, value in MODEL.items() if name != "num_threads"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "charrnn", "train", str(corpus), "--out", str(tmp_path / "two"), "--batch-size=4",
               "--threads=1", "--quiet", "--device=cpu", *flags]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.count("finished after 6 steps") == 1  # rank 0 alone reports

    train(TrainConfig(batch_size=8, device="cpu", **MODEL), [corpus], tmp_path / "one", progress=False)

    def metrics(run):
        return [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]

    two, one = metrics("two"), metrics("one")
    assert [r["step"] for r in two] == [r["step"] for r in one] == list(range(1, 7))
    for a, b in zip(two, one):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a.get("val_loss") == pytest.approx(b.get("val_loss"), abs=1e-5)
    weights = [load_tensors(tmp_path / run / "checkpoints/latest/model.safetensors") for run in ("two", "one")]
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], atol=1e-5, rtol=1e-4)
    # Rank 0 saved every rank's generators (and carried state) for an exact resume.
    names = load_tensors(tmp_path / "two/checkpoints/latest/trainer.safetensors")
    assert {"rank0.rng.torch", "rank1.rng.torch", "rank0.carried.0", "rank1.carried.0"} <= set(names)
