"""Training a character language model: truncated back-propagation through time over a corpus.

:func:`train` is what ``charrnn train`` calls. It settles the settings, prepares the corpus
inside the run directory (:class:`~charrnn.training.run_directory.RunDirectory`), and runs
a :class:`~charrnn.training.loop.Trainer` on a :class:`LanguageModelTask`::

    for each batch (B streams x T characters):
        logits, state = model(x, carried_state)     # state carried from the previous batch
        loss = cross_entropy(logits, y)             # nats per character

The carried state is detached after each batch and reset at each epoch's start. A resumed run
continues exactly: its checkpoint holds the weights, Adam's moments, the data position, the
carried state and every random generator (:class:`RunCheckpointer`), so on a CPU an
interrupted and resumed run computes the same numbers as one that was never interrupted.

:func:`language_model_trainer` builds the same trainer on a prepared corpus without a run
directory, to drive it step by step (:meth:`~charrnn.training.loop.Trainer.advance`).
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch.nn import functional as F

from charrnn.batches import StreamBatches
from charrnn.checkpoint import MODEL_FILE, load_model, load_state_tensors, save_checkpoint
from charrnn.corpus import PreparedCorpus, find_text_files
from charrnn.devices import (ThreadGovernor, check_amp, default_num_threads, num_threads, resolve_amp,
                             select_device)
from charrnn.errors import CharRNNError, SettingError
from charrnn.evaluation import evaluate
from charrnn.files import CheckpointError, load_tensors, read_json
from charrnn.model import CharLM, detach_state
from charrnn.optim import make_optimizer
from charrnn.training import distributed
from charrnn.training.distributed import DistributedContext
from charrnn.training.events import Callback, TrainResult
from charrnn.training.loop import EXPLODING_FACTOR, FunctionCallback, Limits, Trainer
from charrnn.training.reporting import (METRICS_FILE, SAMPLES_FILE, MetricsCallback, MetricsLog, ProgressCallback,
                                       SampleCallback, ShortRunWarning, clock)
from charrnn.training.run_directory import RunDirectory, clear_run, lock_run_directory, refuse_existing_run
from charrnn.training.fine_tuning import source_vocabulary, transplant
from charrnn.training.settings import DEFAULT_MAX_STEPS, TrainConfig, default_eval_every, resolve_settings
from charrnn.training.state import (load_optimizer_state, optimizer_state_to_tensors, random_state_tensors,
                                    restore_random_state)
from charrnn.unroll import flatten_state, rebuild_state

OPTIMIZER_STEM, TRAINER_STEM, TRAINED_STEM = "optimizer", "trainer", "trained"


class LanguageModelTask:
    """Next-character prediction on a corpus's training ids, streams carried from batch to batch.

    Parameters
    ----------
    train_ids, val_ids : 1-D integer arrays
        The two splits (a memory map is fine).
    settings : TrainConfig
    context : DistributedContext
        This process's streams are its rank's (see :class:`~charrnn.batches.StreamBatches`).
    device : torch.device
    """

    def __init__(self, train_ids, val_ids, settings: TrainConfig, context: DistributedContext,
                 device: torch.device):
        self.settings, self.context, self.device = settings, context, device
        self.batches = StreamBatches(train_ids, settings.batch_size, settings.sequence_length, context.rank,
                                     context.world_size)
        self.val_ids = val_ids
        self.carried = None  # the recurrent state carried from batch to batch (None: zeros)
        self.examples_per_step = settings.batch_size * settings.sequence_length * context.world_size

    @property
    def epoch(self) -> int:
        """Completed passes over the training streams."""
        return self.batches.epoch

    @property
    def steps_per_epoch(self) -> int:
        """Batches in one pass over the training streams."""
        return self.batches.steps_per_epoch

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``(x, y)``, each ``(B, T)`` on the device; an epoch's first forgets the carried state."""
        x, y, starts_epoch = self.batches.next_batch()
        if starts_epoch:
            self.carried = None  # the streams start over: forget their ends
        return x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)

    def loss(self, network: torch.nn.Module, batch) -> torch.Tensor:
        """Mean cross-entropy (nats per character) of the batch, carrying the state on."""
        x, y = batch
        logits, state = network(x, self.carried)  # (B, T, V)
        self.carried = detach_state(state)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))

    def state_dict(self) -> dict:
        """Where the streams stand (the same on every rank), for a checkpoint's ``trainer.json``."""
        return {"data": self.batches.state_dict(), "carried": self.carried is not None}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """This rank's carried state, as named tensors."""
        if self.carried is None:
            return {}
        return {f"carried.{index}": leaf.float() for index, leaf in enumerate(flatten_state(self.carried))}

    def load_state_dict(self, state: dict, tensors: dict[str, torch.Tensor], model: CharLM, notes: list[str]) -> None:
        """Continue from :meth:`state_dict` and :meth:`state_tensors`' output.

        When the batch size or the sequence length changed (``--override``), the streams are
        cut anew from the next epoch, and a line in ``notes`` says so.
        """
        same_streams = all(state["data"].get(name) == getattr(self.settings, name)
                           for name in ("batch_size", "sequence_length"))
        self.carried = None
        if not same_streams:
            self.batches.epoch = int(state["data"]["epoch"]) + 1
            notes.append("the batch size or sequence length changed: the data streams start over at the next epoch")
            return
        self.batches.load_state_dict(state["data"])
        if state["carried"]:
            template = model.zero_state(self.settings.batch_size, self.device)
            count = len(flatten_state(template))
            self.carried = rebuild_state(template, [tensors[f"carried.{index}"] for index in range(count)])

    def evaluate(self, model: torch.nn.Module) -> float:
        """Validation loss (nats) on at most ``eval_characters`` characters; rank 0 computes it."""
        loss = None
        if self.context.is_main:
            # The global batch as streams, so the figure does not depend on the number of processes.
            loss = evaluate(model, self.val_ids, batch_size=self.settings.batch_size * self.context.world_size,
                            sequence_length=self.settings.sequence_length, device=self.device,
                            max_characters=self.settings.eval_characters or None).loss
        return distributed.broadcast_json(loss, self.context, self.device)


def language_model_trainer(settings: TrainConfig, corpus: PreparedCorpus, run_dir: str | Path | None = None,
                           context: DistributedContext | None = None, device: torch.device | None = None,
                           callbacks: Iterable[Callback] = ()) -> Trainer:
    """A :class:`~charrnn.training.loop.Trainer` of a new :class:`~charrnn.model.CharLM` on ``corpus``.

    With ``run_dir``, it saves checkpoints there (:class:`RunCheckpointer`); without, it keeps
    everything in memory, to be driven step by step. ``device`` defaults to
    :func:`~charrnn.devices.select_device` of ``settings.device``. With ``settings.init_from``
    the model starts from that checkpoint's weights (:func:`~charrnn.training.fine_tuning.transplant`).
    """
    context = context or DistributedContext()
    device = device or select_device(settings.device, context.local_rank, context.is_distributed)
    corpus.check_split(settings.val_fraction, settings.sequence_length)
    train_ids, val_ids = corpus.split(settings.val_fraction)
    if settings.documents_per_line:
        from charrnn.training.documents import DocumentTask

        newline = corpus.vocabulary.index.get("\n")
        if newline is None:
            raise SettingError("--documents-per-line: the corpus has no line breaks, so it is one document; "
                               "drop --documents-per-line")
        task = DocumentTask(train_ids, val_ids, settings, context, device, newline)
    else:
        task = LanguageModelTask(train_ids, val_ids, settings, context, device)
    torch.manual_seed(settings.seed)
    model = CharLM(settings.model_config(corpus.vocabulary.size)).to(device)
    network = distributed.wrap_model(model, context, device)
    torch.manual_seed(settings.seed + context.rank)  # each rank its own dropout masks
    optimizer = make_optimizer("adam", model.parameters(), settings.learning_rate, settings.weight_decay, device)
    limits = Limits(max_steps=settings.max_steps, epochs=settings.epochs, max_time=settings.max_time,
                    log_every=settings.log_every, default_steps=DEFAULT_MAX_STEPS, patience=settings.early_stop)
    checkpointer = None
    if run_dir is not None:
        checkpointer = RunCheckpointer(RunDirectory(run_dir), corpus.vocabulary, settings)
    trainer = Trainer(model, task, optimizer, settings.schedule, limits, device, grad_clip=settings.grad_clip,
                      amp=settings.amp, loss_limit=EXPLODING_FACTOR * max(math.log(corpus.vocabulary.size), 1.0),
                      context=context, network=network, checkpointer=checkpointer, callbacks=callbacks,
                      run_dir=None if run_dir is None else Path(run_dir), average_decay=settings.average_decay)
    limits.eval_every = settings.eval_every or default_eval_every(trainer.total_steps, task.steps_per_epoch)
    if settings.init_from:
        source = load_model(settings.init_from)
        new = transplant(model, corpus.vocabulary, source.model, source.vocabulary)
        added = f"; new characters: {''.join(new)!r}" if new else "; no new characters"
        trainer.notes.append(f"fine-tuning {source.path} ({source.vocabulary.size} characters{added})")
    return trainer


class AdaptiveThreads(Callback):
    """A run with no ``--threads`` follows the machine's load (:class:`~charrnn.devices.ThreadGovernor`)."""

    def __init__(self):
        self.governor = ThreadGovernor()

    def on_step(self, trainer: Trainer, event) -> None:
        self.governor.update()


def _describe(trainer: Trainer, settings: TrainConfig, characters: int) -> str:
    """What is about to happen, in a line (said first by the progress subscriber)."""
    config = trainer.model.config
    parameters = sum(parameter.numel() for parameter in trainer.model.parameters())
    limits = [f"{trainer.total_steps} steps"] if trainer.total_steps else []
    if settings.max_time:
        limits.append(f"{clock(settings.max_time)}")
    processes = f" x {trainer.context.world_size} processes" if trainer.context.is_distributed else ""
    where = f"; run directory {trainer.run_dir}" if trainer.run_dir is not None else ""
    start = f"resuming at step {trainer.step}" if trainer.step else "training"
    return (f"{start}: {config.num_layers}x{config.hidden_size} {config.cell} ({parameters:,} parameters) on "
            f"{characters:,} characters ({config.vocab_size} distinct), batch {settings.batch_size}{processes} x "
            f"{settings.sequence_length}, {_machine(trainer.device, settings)}, until {' or '.join(limits)}{where}")


def _machine(device: torch.device, settings: TrainConfig) -> str:
    """The device, and on a CPU its threads (and whether they follow the load)."""
    if device.type != "cpu":
        return str(device)
    threads = torch.get_num_threads()
    chosen = "" if settings.num_threads else ", following the load"
    return f"cpu ({threads} thread{'s' if threads > 1 else ''}{chosen})"


def _describe_corpus(corpus: PreparedCorpus, skipped: list[Path], listed: int = 8) -> str:
    """The files trained on, with their characters (and the binary files skipped), in a line."""
    files = [f"{Path(record['path']).name} {record['characters']:,}" if record.get("characters") is not None
             else Path(record["path"]).name for record in corpus.files]
    more = f", and {len(files) - listed} more" if len(files) > listed else ""
    line = f"corpus: {len(files)} file(s), {len(corpus):,} characters ({', '.join(files[:listed])}{more})"
    if skipped:
        names = ", ".join(str(path) for path in skipped[:listed])
        line += f"; skipped {len(skipped)} binary file(s): {names}{' ...' if len(skipped) > listed else ''}"
    return line


class RunCheckpointer:
    """Saves a language-model trainer's whole state into its run directory, and restores it.

    ``checkpoints/<kind>`` gets the weights, ``optimizer.safetensors`` + the optimizer's JSON
    in ``trainer.json``, and per rank the random generators and the carried state
    (``trainer.safetensors``). A run that averages its weights saves the average as the model
    (``model.safetensors``, what every command loads) and the weights being trained beside it
    (``trained.safetensors``), with the number of steps averaged in ``trainer.json``. Each
    piece is restored by its owner. With ``keep``, each evaluation's weights are also kept as
    ``checkpoints/step-<step>-loss-<val>``, the last ``keep`` of them.
    """

    def __init__(self, run: RunDirectory, vocabulary, settings: TrainConfig):
        self.run, self.vocabulary, self.settings = run, vocabulary, settings

    def existing(self) -> tuple[Path | None, Path | None]:
        """The whole ``(latest, best)`` checkpoints saved so far."""
        if not self.run.checkpoints.exists():
            return None, None
        return self.run.existing_checkpoints()

    def save(self, trainer: Trainer, kinds: Sequence[str]) -> Path | None:
        """Save the whole training state as ``checkpoints/<kind>`` for each kind (rank 0 writes;
        every rank must call this, since each contributes its generators and carried state)."""
        mine = {**random_state_tensors(), **trainer.task.state_tensors()}
        per_rank = distributed.gather_tensors(mine, trainer.context, trainer.device)
        if not trainer.context.is_main:
            return None
        optimizer_tensors, optimizer_structure = optimizer_state_to_tensors(trainer.optimizer.state_dict())
        trainer_tensors = {f"rank{rank}.{name}": tensor for rank, tensors in enumerate(per_rank)
                           for name, tensor in tensors.items()}
        state = {**trainer.state.state_dict(), "elapsed": trainer.elapsed(), **trainer.task.state_dict(),
                 "world_size": trainer.context.world_size, "optimizer": optimizer_structure,
                 "scaler": trainer.scaler.state_dict() if trainer.scaler.is_enabled() else None,
                 "schedule": {"total_steps": trainer.total_steps, "max_time": self.settings.max_time,
                              "learning_rate": trainer.optimizer.param_groups[0]["lr"]}}
        extra_tensors = {OPTIMIZER_STEM: optimizer_tensors, TRAINER_STEM: trainer_tensors}
        if trainer.average is not None:
            extra_tensors[TRAINED_STEM] = trainer.model.state_dict()
            state["averaged_steps"] = int(trainer.average.n_averaged)
        folder = None
        for kind in kinds:
            folder = save_checkpoint(self.run.checkpoint(kind), trainer.evaluated_model, self.vocabulary,
                                     trainer.model.config, extra_tensors=extra_tensors,
                                     extra_json={TRAINER_STEM: state}, training=self.settings.to_dict())
        if self.settings.keep and trainer.state.evaluated_step == trainer.step:
            self._keep_history(trainer)
        return folder

    def _keep_history(self, trainer: Trainer) -> None:
        """Save this evaluation's model as ``checkpoints/step-<step>-loss-<val>`` (weights and
        settings, enough to sample and evaluate) and remove the oldest beyond ``keep``."""
        state = trainer.state
        save_checkpoint(self.run.history_checkpoint(trainer.step, state.last_val_loss), trainer.evaluated_model,
                        self.vocabulary, trainer.model.config, training=self.settings.to_dict(),
                        extra_json={TRAINER_STEM: {"step": trainer.step, "last_val_loss": state.last_val_loss,
                                                   "best_val_loss": state.best_val_loss}})
        self.run.prune_history(self.settings.keep)

    def restore(self, trainer: Trainer, folder: Path) -> None:
        """Continue ``trainer`` from the checkpoint in ``folder``, as :meth:`save` left it: each
        piece (weights, optimizer, generators, the task's data position and carried state, the
        scaler, the counters) restored by its owner."""
        trainer_file = folder / f"{TRAINER_STEM}.json"
        state = read_json(trainer_file)
        model = trainer.evaluated_model
        model.load_state_dict(load_state_tensors(folder / MODEL_FILE, model.state_dict()))
        optimizer_file = folder / f"{OPTIMIZER_STEM}.safetensors"
        with _damage_named(folder, trainer_file):
            if trainer.average is not None:  # the average is the model; the trained weights lie beside it
                trained = load_state_tensors(folder / f"{TRAINED_STEM}.safetensors", trainer.model.state_dict())
                trainer.model.load_state_dict(trained)
                trainer.average.n_averaged.fill_(int(state["averaged_steps"]))
            if state.get("world_size") != trainer.context.world_size:
                raise CharRNNError(f"the run was trained by {state.get('world_size')} process(es), now "
                                   f"{trainer.context.world_size}; resume it with the same number")
            load_optimizer_state(trainer.optimizer, load_tensors(optimizer_file), state["optimizer"], optimizer_file)
            prefix = f"rank{trainer.context.rank}."
            mine = {name[len(prefix):]: tensor for name, tensor in
                    load_tensors(folder / f"{TRAINER_STEM}.safetensors").items() if name.startswith(prefix)}
            restore_random_state(mine)
            trainer.task.load_state_dict(state, mine, trainer.model, trainer.notes)
            if state.get("scaler") and trainer.scaler.is_enabled():
                trainer.scaler.load_state_dict(state["scaler"])
            trainer.state.load_state_dict(state)


@contextmanager
def _damage_named(folder: Path, trainer_file: Path):
    """A restore's failures as one line: a refusal names the checkpoint, damage the file."""
    try:
        yield
    except CheckpointError:
        raise
    except CharRNNError as error:
        raise CharRNNError(f"--resume: {folder}: {error}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as error:
        raise CheckpointError(f"{trainer_file}: training state is damaged "
                              f"({type(error).__name__}: {str(error).splitlines()[0][:200]})") from None


# -- the library entry point -------------------------------------------------------------------
def default_run_dir(corpus_paths: Sequence[str | Path]) -> Path:
    """Where a run goes when no folder is named: ``runs/<first corpus name>``."""
    return Path("runs") / (Path(corpus_paths[0]).resolve().stem or "run")


def train(config: TrainConfig | dict | None = None, corpus_paths: Sequence[str | Path] = (),
          out_dir: str | Path | None = None, resume: bool = False, override: bool = False,
          progress: bool | None = None, callback: Callable[[Trainer], None] | None = None,
          context: DistributedContext | None = None, *, config_file: str | Path | None = None,
          preset: str | None = None, overwrite: bool = False, include: Sequence[str] = (),
          exclude: Sequence[str] = (), callbacks: Iterable[Callback] = ()) -> TrainResult:
    """Train a character language model on text files; what ``charrnn train`` does.

    Parameters
    ----------
    config : TrainConfig, dict or None
        A new run's settings (a :class:`TrainConfig`, or a dict of the settings to change from
        the defaults, the preset and ``config_file``). When resuming: a dict of the settings to
        change, or None.
    corpus_paths : sequence of paths
        Text files and folders. A resumed run trains on its own prepared copy; paths given
        then must be the run's.
    out_dir : path, optional
        The run directory (default: ``runs/<first corpus name>``). A new run refuses one that
        already holds a run unless ``overwrite``.
    resume : bool
        Continue the run in ``out_dir`` from its latest checkpoint.
    override : bool
        Let a resumed run change settings such as the learning rate (never the model's shape
        or the data split).
    progress : bool, optional
        False silences the progress bar and log lines.
    callback : callable, optional
        ``callback(trainer)`` after every step.
    context : DistributedContext, optional
        Default: read from ``torchrun``'s environment variables.
    config_file, preset : optional
        A TOML file of settings, and a named preset (see :func:`~charrnn.training.settings.resolve_settings`).
    overwrite : bool
        Replace a run already in ``out_dir``.
    include, exclude : sequences of globs
        Which files of the corpus folders to take (see :func:`~charrnn.corpus.find_text_files`);
        binary files there are skipped, and said so.
    callbacks : iterable of Callback
        More subscribers to the trainer's events.

    Returns
    -------
    TrainResult

    Raises
    ------
    CharRNNError
        For bad settings or files (exit status 2) and failures at run time (1).
    """
    context = context or distributed.detect_context()
    if out_dir is None:
        if resume or not corpus_paths:
            raise SettingError("--out is needed to name the run" if resume else
                               "no corpus given: name at least one text file or folder to train on")
        out_dir = default_run_dir(corpus_paths)
    if overwrite and resume:
        raise SettingError("--overwrite starts a new run; it cannot go with --resume")
    run = RunDirectory(out_dir)
    if not resume and not corpus_paths:
        raise SettingError("no corpus given: name at least one text file or folder to train on")
    if run.path.exists() and not run.path.is_dir():
        raise SettingError(f"{run.path}: exists and is not a folder; choose another --out")
    # A run that fails before its first step leaves the folder as it found it (a resumed run's
    # folder, already there, is never touched).
    clean_up = context.is_main and (not run.path.exists() or not resume)
    undo = run.undo_of_new_entries() if clean_up else (lambda: None)
    with lock_run_directory(run.path) if context.is_main else nullcontext():
        try:
            settings, saved_corpus = _settle(run, config, config_file, preset, resume, override, overwrite)
            skipped: list[Path] = []
            paths = [str(path.resolve()) for path in find_text_files(
                corpus_paths, include_patterns=include, exclude_patterns=exclude, encoding=settings.encoding,
                skipped=skipped)] if corpus_paths else []
            if resume and paths and paths != saved_corpus.get("paths", paths):
                raise SettingError(f"--resume: the corpus differs from the run's "
                                   f"({', '.join(saved_corpus.get('paths', []))}); leave CORPUS out to resume on "
                                   f"the run's own prepared copy")
            device = select_device(settings.device, context.local_rank, context.is_distributed)
            check_amp(resolve_amp(settings.amp, device), device)
        except BaseException:
            undo()
            raise
        with num_threads(settings.num_threads or default_num_threads(context.local_world_size)):
            distributed.start(context, device)
            try:
                try:
                    trainer = _start_trainer(run, settings, paths, saved_corpus, resume, overwrite, context, device,
                                             progress, skipped,
                                             [*callbacks, *([FunctionCallback(callback)] if callback else [])])
                except BaseException:
                    undo()
                    raise
                result = trainer.run()
                distributed.barrier(context)  # leave together: a rank that exits early can abort gloo
                return result
            finally:
                distributed.stop(context)


def _settle(run: RunDirectory, config, config_file, preset, resume: bool, override: bool,
            overwrite: bool) -> tuple[TrainConfig, dict]:
    """The settings of the run about to start, and the corpus record of the run resumed."""
    if not resume:
        settings = resolve_settings(config, config_file, preset, override=override)
        refuse_existing_run(run.path, overwrite, resume_hint=True)
        return settings, {}
    saved, saved_corpus = run.read_settings()
    settings = resolve_settings(config, config_file, preset, saved=saved, override=override,
                                saved_source=str(run.config_file))
    return settings, saved_corpus


def _start_trainer(run: RunDirectory, settings: TrainConfig, paths: list[str], saved_corpus: dict, resume: bool,
                   overwrite: bool, context: DistributedContext, device: torch.device, progress,
                   skipped: list[Path], callbacks: list) -> Trainer:
    """Prepare (or reopen) the corpus, build the trainer, restore it when resuming."""
    if context.is_main:
        if overwrite:
            clear_run(run.path)
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        extends = source_vocabulary(settings.init_from) if settings.init_from else None
        corpus = (run.open_corpus(saved_corpus, settings.encoding) if resume else
                  run.prepare_corpus(paths, settings.encoding, extends))
    distributed.barrier(context)  # the others open what rank 0 prepared
    if not context.is_main:
        corpus = PreparedCorpus.open(run.data)
    reporters = []
    if context.is_main:
        progress_callback = ProgressCallback(enabled=progress is not False)
        reporters = [progress_callback, MetricsCallback(run.path),
                     ShortRunWarning(corpus.vocabulary.size, say=progress_callback.say)]
        if settings.sample_every:
            reporters.append(SampleCallback(run.path, corpus.vocabulary, settings, say=progress_callback.say))
    if settings.num_threads is None and device.type == "cpu" and context.local_world_size == 1:
        reporters.append(AdaptiveThreads())
    trainer = language_model_trainer(settings, corpus, run.path, context, device, [*reporters, *callbacks])
    if resume:
        latest, _ = trainer.checkpointer.existing()
        if latest is not None:
            trainer.checkpointer.restore(trainer, latest)
        if context.is_main:
            # Killed before its first checkpoint: start over; else drop the lines logged after it.
            for log in (MetricsLog(run.path / METRICS_FILE), MetricsLog(run.path / SAMPLES_FILE)):
                log.truncate_after(trainer.step)
    trainer.notes[:0] = [_describe(trainer, settings, len(trainer.task.batches.ids)), _describe_corpus(corpus, skipped)]
    if context.is_main:
        run.write_settings(settings, corpus.vocabulary, {
            "paths": saved_corpus.get("paths", paths), "encoding": settings.encoding, "characters": len(corpus),
            "files": [{"path": record["path"], "characters": record.get("characters")} for record in corpus.files]})
    return trainer
