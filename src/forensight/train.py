"""Training on Lightning with honest model selection.

The model is chosen on the VALIDATION split only (early stopping and the best checkpoint on
validation loss; the decision threshold on validation scores). The test split is never read
here. A run directory holds::

    config.yaml            preprocess + model + train sections (an experiment file: it can be
                           passed back to `forensight train --config`) and the data counts
    logs/                  CSV and TensorBoard logs
    checkpoints/last.ckpt  Lightning state for --resume
    checkpoints/best.ckpt  the best epoch on validation loss (both checkpoints leave out a
                           frozen encoder: it is the pretrained one the module is built with)
    model.pt               the best weights + configs + threshold, loadable with weights_only=True
    val_metrics.json       validation metrics of the selected model

Data come from :class:`ClipDataModule` (planned clips of the cache, uint8 until the device);
:class:`DetectorModule` holds the model, loss and optimiser (and a predict step on the scoring
path). After fitting, :func:`export_run` writes ``model.pt`` and chooses the threshold on the
validation scores computed by the one scoring path from that file, so ``evaluate --split val``
reproduces them exactly.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from forensight.cache import Cache
from forensight.config import (
    ModelConfig,
    TrainConfig,
    merge,
    model_config_from_dict,
    resolve_model_config,
    save_yaml,
    to_dict,
)
from forensight.datasets.clips import ClipDataset, augment_batch, collate_clips, prepare_batch
from forensight.io import atomic_write_json
from forensight.modelfile import MODEL_FILE, load_model_file, save_model_file, update_model_file
from forensight.models.temporal import lengths_to_mask
from forensight.scoring import (
    BatchOutput,
    ClipPredictions,
    forward_batch,
    make_dataset,
    resolve_device,
    score_split,
)

log = logging.getLogger(__name__)

__all__ = ["ClipDataModule", "DetectorModule", "TrainConfig", "TrainResult", "TrainingStopped", "export_run", "train"]


def _loader(ds: ClipDataset, batch_size: int, shuffle: bool, num_workers: int, seed: int,
            sampler: Any = None) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
        num_workers=num_workers, collate_fn=collate_clips, generator=g, drop_last=False,
        persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available())


class ClipDataModule(L.LightningDataModule):
    """The train / val clips of a cache for one model (planned by :mod:`forensight.planning`).

    Built eagerly (the datasets only index memory-mapped arrays), so the class balance and the
    clip counts are known before the trainer starts. ``predict_dataloader`` serves the val split.
    """

    def __init__(self, cache: Cache, model_cfg: ModelConfig, cfg: TrainConfig, features: Any = None) -> None:
        super().__init__()
        self.cache, self.model_cfg, self.cfg, self.features = cache, model_cfg, cfg, features
        spec = model_cfg.input_spec()
        self.train_ds = make_dataset(cache, "train", spec, cfg.max_clips, cfg.max_frames, features, cfg.methods,
                                     cfg.min_face_coverage, fakes=cfg.fakes)
        self.val_ds = make_dataset(cache, "val", spec, cfg.max_clips, cfg.max_frames, features, cfg.methods,
                                   cfg.min_face_coverage, fakes=cfg.fakes)
        labels = self.train_ds.labels()
        self.n_fake, self.n_real = int(labels.sum()), int((1 - labels).sum())
        if self.n_fake == 0 or self.n_real == 0:
            raise ValueError(f"the train split needs both classes, has {self.n_real} real and {self.n_fake} fake clips"
                             f" (fakes={cfg.fakes!r}{_fakes_hint(cache, cfg.fakes) if self.n_fake == 0 else ''})")

    @property
    def pos_weight(self) -> float:
        """Positive-class loss weight: #real / #fake with ``balance="loss"``, else 1."""
        return self.n_real / self.n_fake if self.cfg.balance == "loss" else 1.0

    def model_card(self) -> dict[str, Any]:
        """What this run trains and selects on (:func:`forensight.modelcard.training_card`): the
        videos of the train / val splits that gave at least one clip."""
        from forensight.modelcard import training_card

        def used(ds: Any) -> list[Any]:
            vids = {r.video_id for r in ds.refs}
            return [rec for vid, rec in ds.records.items() if vid in vids]

        return training_card({"train": used(self.train_ds), "val": used(self.val_ds)}, cache=str(self.cache.root),
                             preprocess_hash=self.cache.config.hash, fakes=self.cfg.fakes,
                             pseudo_settings=self.cache.pseudo_fakes)

    def summary(self) -> dict[str, Any]:
        """Counts recorded in the run's config.yaml."""
        return {"train_clips": len(self.train_ds), "train_real": self.n_real, "train_fake": self.n_fake,
                "val_clips": len(self.val_ds), "not_scored": {**self.train_ds.unscored, **self.val_ds.unscored}}

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        sampler = None
        if self.cfg.balance == "sampler":
            labels = self.train_ds.labels()
            w = np.where(labels == 1, 0.5 / self.n_fake, 0.5 / self.n_real)
            sampler = torch.utils.data.WeightedRandomSampler(
                torch.tensor(w), num_samples=len(labels), replacement=True,
                generator=torch.Generator().manual_seed(self.cfg.seed))
        return _loader(self.train_ds, self.cfg.batch_size, True, self.cfg.num_workers, self.cfg.seed, sampler)

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        return _loader(self.val_ds, self.cfg.batch_size, False, self.cfg.num_workers, self.cfg.seed)

    def predict_dataloader(self) -> torch.utils.data.DataLoader:
        return _loader(self.val_ds, self.cfg.batch_size, False, 0, self.cfg.seed)


def _fakes_hint(cache: Cache, fakes: str) -> str:
    """What the cache holds instead, when ``fakes`` selects no fake."""
    from forensight.records import is_pseudo

    rows = [r for r in cache.rows() if r["status"] == "ok" and int(r["label"]) == 1]
    n_pseudo = sum(is_pseudo(r["method"]) for r in rows)
    n_real = len(rows) - n_pseudo
    if fakes == "real" and n_pseudo:
        return f"; the cache holds {n_pseudo} pseudo-fakes: train on them with --fakes pseudo (or both)"
    if fakes == "pseudo" and not n_pseudo:
        return ("; the cache holds no pseudo-fakes: make them with `forensight preprocess ... --pseudo-fakes sbi,vb`"
                + (f", or use its {n_real} dataset fakes with --fakes real" if n_real else ""))
    return ""


class DetectorModule(L.LightningModule):
    """Model + loss + optimiser; batches are uint8 and get prepared here, on the device."""

    def __init__(self, model_cfg: dict[str, Any], train_cfg: dict[str, Any], pos_weight: float = 1.0,
                 preprocess_hash: str = "", frozen_encoder: bool = False) -> None:
        super().__init__()
        from forensight.models.registry import build_model

        self.save_hyperparameters()
        self.model_cfg = model_config_from_dict(model_cfg)
        self.train_cfg = merge(TrainConfig, train_cfg)
        self.model = build_model(self.model_cfg)
        self.spec = self.model_cfg.input_spec()
        self.frozen_encoder = bool(frozen_encoder)
        if self.frozen_encoder:  # trained on cached features: the encoder keeps its weights and statistics
            for p in self.model.encoder.parameters():
                p.requires_grad_(False)
        self.register_buffer("pos_weight", torch.tensor(float(pos_weight)))
        self._val = ClipPredictions()
        self._gen = torch.Generator().manual_seed(self.train_cfg.seed)

    def _step(self, batch: dict[str, Any], train: bool) -> tuple[torch.Tensor, Any]:
        if "features" in batch:  # frozen encoder: classify the cached features
            feats = batch["features"].float()
            out = self.model.classify_features(feats, lengths_to_mask(batch["lengths"], *feats.shape[:2],
                                                                      feats.device))
        else:
            frames = batch["frames"]
            if train and self.train_cfg.augment == "basic":
                frames = augment_batch(frames, generator=self._gen)
            elif train and self.train_cfg.augment == "robust":
                from forensight.augment import augment_clips

                frames = augment_clips(frames, generator=self._gen)
            x = prepare_batch(frames, self.spec, channels_last=self.device.type == "cuda")
            out = self.model(x, batch["lengths"])
        y = batch["label"].to(out.logits.dtype)
        loss = F.binary_cross_entropy_with_logits(out.logits.float(), y.float(), pos_weight=self.pos_weight)
        return loss, out

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, _ = self._step(batch, train=True)
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["label"]))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = ClipPredictions()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss, out = self._step(batch, train=False)
        bs = len(batch["label"])
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=bs)
        # what the checkpoint is selected on: val_loss, from epoch min_epochs on (inf before)
        eligible = self.current_epoch + 1 >= min(self.train_cfg.min_epochs, self.train_cfg.max_epochs)
        self.log("val_select", loss if eligible else torch.full_like(loss, float("inf")), on_epoch=True,
                 sync_dist=True, batch_size=bs)
        n = batch["lengths"].cpu().numpy()
        w = out.weights.detach().float().cpu().numpy()
        self._val.extend(batch, BatchOutput(logits=out.logits.detach().float().cpu().numpy().reshape(-1),
                                            weights=[w[i, :int(n[i])] for i in range(len(n))]))

    def on_validation_epoch_end(self) -> None:
        preds = _gather_predictions(self._val)
        _, y, s = preds.video_scores()
        if len(set(y.tolist())) == 2:
            from forensight.metrics import auc

            self.log("val_auc", float(auc(y, s)), prog_bar=True, sync_dist=False, rank_zero_only=False)

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> BatchOutput:
        """The scoring path's forward (precision policy included) on one batch."""
        return forward_batch(self.model, batch, self.device)

    def configure_optimizers(self) -> Any:
        cfg = self.train_cfg
        params = [p for p in self.model.parameters() if p.requires_grad]
        # foreach: one multi-tensor update instead of a loop over the parameters (the default on
        # GPUs only): the same arithmetic (every study cell's default-recipe validation log loss is
        # unchanged to the sixth digit), 3.5-3.7 instead of 3.7-4.2 ms a step on one CPU thread for
        # the 1.46 M trainable parameters of a 2x128 BiLSTM head on Lite0 features
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        per_epoch = max(1, total // max(1, cfg.max_epochs))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.warmup_epochs * per_epoch, total, cfg.schedule))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def train(self, mode: bool = True) -> DetectorModule:
        super().train(mode)
        if mode:
            self._keep_frozen_in_eval()
        return self

    def _keep_frozen_in_eval(self) -> None:
        """Frozen parts (the LipForensics front end + trunk, a frozen encoder) stay in eval mode, so
        their BatchNorm statistics are kept."""
        keep = getattr(self.model, "frozen_modules", None)
        frozen = list(keep()) if callable(keep) else []
        if self.frozen_encoder:
            frozen.append(self.model.encoder)
        for m in frozen:  # called every batch: reading the modes first costs 0.1 ms, setting them 0.4 ms (Lite0)
            if any(c.training for c in m.modules()):
                m.eval()

    def _frozen_keys(self) -> list[str]:
        """State-dict keys of the frozen encoder (empty unless trained on cached features)."""
        if not self.frozen_encoder:
            return []
        return ["model.encoder." + k for k in self.model.encoder.state_dict()]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A frozen encoder never changes (its weights are the pretrained ones the module is built
        # with): leave it out of the Lightning checkpoints, which are written every epoch (they
        # were ~3/4 encoder and a quarter of a run's time on cached features).
        for k in self._frozen_keys():
            checkpoint["state_dict"].pop(k, None)

    def complete_state(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state_dict`` with the frozen encoder's entries filled in from this module (they are
        left out of checkpoints, :meth:`on_save_checkpoint`); other missing keys stay missing."""
        own = self.state_dict()
        return {**{k: own[k] for k in self._frozen_keys() if k not in state_dict}, **state_dict}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = self.complete_state(checkpoint["state_dict"])

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Lightning restores per-module training modes at the start of an epoch without calling
        # ``train()`` above (seen with a frozen encoder on crops: its BatchNorm statistics drifted)
        self._keep_frozen_in_eval()


def lr_lambda(warmup_steps: float, total_steps: int, schedule: str) -> Any:
    """LR multiplier per optimiser step: linear warm-up from ~0 to 1 over ``warmup_steps``, then
    constant or a cosine decay to 0 at ``total_steps``."""

    def f(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        span = max(1.0, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup_steps) / span)))

    return f


def _gather_predictions(p: ClipPredictions) -> ClipPredictions:
    """All ranks' predictions under DDP (identity on one process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return p
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, p)
    out = ClipPredictions()
    for q in parts:
        out.merge(q)
    return out


class TrainingStopped(RuntimeError):
    """Raised by :func:`train` when its ``on_epoch`` hook asks to stop (a pruned tuning trial):
    the run ends after validation epoch ``epoch`` (0-based) and leaves no ``model.pt``."""

    def __init__(self, epoch: int) -> None:
        super().__init__(f"training stopped by its on_epoch hook after epoch {epoch}")
        self.epoch = epoch


class _EpochHook(L.Callback):
    """Calls ``fn(epoch, best_val_loss)`` after each validation epoch (epoch 0-based, the lowest
    ``val_loss`` so far, float); ``fn`` returning True stops the run with :class:`TrainingStopped`."""

    def __init__(self, fn: Callable[[int, float], bool]) -> None:
        self.fn, self.best = fn, math.inf

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        v = float(trainer.callback_metrics.get("val_loss", math.nan))
        self.best = min(self.best, v) if math.isfinite(v) else self.best
        if self.fn(int(trainer.current_epoch), self.best):
            raise TrainingStopped(int(trainer.current_epoch))


class _BestInMemory(L.Callback):
    """A lean run's model selection: the weights of the epoch that ``ModelCheckpoint(monitor=
    "val_select", mode="min", save_top_k=1)`` would write as ``best.ckpt`` (the first epoch, then
    each strictly lower ``val_select``; NaN counts as +inf), kept in memory instead of on disk.
    The frozen encoder is left out, as in the checkpoints."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] | None = None
        self.value, self.epoch = math.inf, -1

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        cur = trainer.callback_metrics.get("val_select")
        if cur is None:
            return
        cur = float(cur)
        cur = math.inf if math.isnan(cur) else cur
        if self.state is None or cur < self.value:
            skip = set(pl_module._frozen_keys())
            self.state = {k: v.detach().clone() for k, v in pl_module.state_dict().items() if k not in skip}
            self.value, self.epoch = cur, int(trainer.current_epoch)


@dataclass
class TrainResult:
    """Where a training run left its files, and its validation figures."""

    run_dir: Path
    model_path: Path
    best_epoch: int
    val_metrics: dict[str, Any]
    seconds: float


def export_run(run_dir: str | Path, module: DetectorModule, cache: Cache, cfg: TrainConfig, best_epoch: int,
               epochs_run: int, device: torch.device | str | None = None,
               features: Any = None, trained_on: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``model.pt`` from ``module``'s weights, then choose the threshold on the validation
    split scored by the one scoring path FROM THAT FILE (the numbers ``evaluate --split val``
    gives), and store it with the validation metrics (also in ``val_metrics.json``).

    ``features``: the feature cache the module was trained on; its key is stored in the model
    file, so ``evaluate`` scores from the same features by default. ``trained_on``: the model card
    (:meth:`ClipDataModule.model_card`), stored as ``trained_on``.
    """
    from forensight.metrics import choose_threshold, compute_all, log_loss

    run_dir = Path(run_dir)
    extra = {"features": features.key} if features is not None else {}
    if trained_on is not None:
        extra["trained_on"] = trained_on
    path = save_model_file(run_dir / MODEL_FILE, module.model, module.model_cfg, cache.config, cfg, 0.0, {},
                           extra=extra)
    dev = resolve_device(device)
    lm = load_model_file(path, device=dev)
    preds, _ = score_split(lm, cache, "val", batch_size=cfg.batch_size, max_frames=cfg.max_frames,
                           max_clips=cfg.max_clips, device=dev, features=features is not None,
                           methods=cfg.methods, fakes=cfg.fakes)
    _, y, s = preds.video_scores()
    two = len(set(y.tolist())) == 2
    threshold = choose_threshold(y, s, rule="eer") if two else 0.0
    val_metrics = (compute_all(y, s, threshold=threshold, clip_y=np.asarray(preds.labels),
                               clip_s=np.asarray(preds.logits)) if two else {"note": "validation split has one class"})
    if len(preds.labels):  # the tuning objective (forensight.tune): clip-level BCE, unweighted
        val_metrics["log_loss"] = log_loss(np.asarray(preds.labels), np.asarray(preds.logits))
    val_metrics.update({"best_epoch": best_epoch, "epochs_run": epochs_run, "device": str(dev),
                        "scored_from": "frozen-encoder features" if features is not None else "crops",
                        "threshold_rule": "eer on validation video scores (scoring path, from model.pt)",
                        "threshold": float(threshold)})
    update_model_file(path, threshold=float(threshold), val_metrics=val_metrics)
    atomic_write_json(run_dir / "val_metrics.json", json.loads(json.dumps(val_metrics, default=float)))
    return val_metrics


def train(cache_root: str | Path, run_dir: str | Path, model: ModelConfig | str, cfg: TrainConfig | None = None,
          resume: bool = False, progress: bool = True, *, lean: bool = False,
          on_epoch: Callable[[int, float], bool] | None = None) -> TrainResult:
    """Train ``model`` (a config, a preset name or a YAML path) on the cache's train split, select
    on its val split, write the run directory.

    ``lean``: a throwaway run (a tuning trial): no Lightning checkpoints and no logs are written,
    the best epoch's weights are kept in memory (the same selection as ``best.ckpt``, so the run's
    ``model.pt`` and validation figures equal a full run's); it cannot be resumed.
    ``on_epoch(epoch, best_val_loss)``: called after each validation epoch; returning True stops
    the run with :class:`TrainingStopped` (no ``model.pt`` is written).
    """
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    cfg = cfg or TrainConfig()
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    # Under DDP Lightning relaunches this command once per extra process (LOCAL_RANK / NODE_RANK
    # set): only the launching process checks and writes the run directory.
    launcher = os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
    if launcher and run_dir.exists() and any(run_dir.iterdir()) and not resume:
        raise FileExistsError(f"run directory {run_dir} is not empty; pass --resume to continue it "
                              "or choose a new --run-dir")
    if resume and lean:
        raise ValueError("a lean run keeps no checkpoint: it cannot be resumed")
    if resume and not last.is_file():
        raise FileNotFoundError(f"nothing to resume: {last} does not exist")
    from forensight.models.registry import check_training

    model_cfg = resolve_model_config(model)
    check_training(model_cfg)
    cache = Cache.open(cache_root)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    features = None
    encoder = _frozen_encoder(model_cfg, cfg)
    if encoder is not None and cfg.augment == "robust":
        # cached features are computed once from unaugmented crops: to see augmented pixels the
        # frozen encoder runs on the augmented crops every step instead (TrainConfig.augment)
        log.info("augment='robust' with a frozen encoder: training on crops through the frozen encoder")
    elif encoder is not None:
        from forensight.features import build_features

        features, _ = build_features(cache, model_cfg, encoder, device=_device(cfg), progress=progress)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
    data = ClipDataModule(cache, model_cfg, cfg, features=features)
    run_dir.mkdir(parents=True, exist_ok=True)
    if launcher:
        save_yaml({"preprocess": cache.config.to_dict(), "model": model_cfg.to_dict(), "train": to_dict(cfg),
                   "preprocess_hash": cache.config.hash, "cache": str(Path(cache_root).resolve()),
                   "data": data.summary()}, run_dir / "config.yaml")

    module = DetectorModule(model_cfg.to_dict(), to_dict(cfg), pos_weight=data.pos_weight,
                            preprocess_hash=cache.config.hash, frozen_encoder=encoder is not None)
    cuda = _device(cfg) == "cuda"
    precision = cfg.precision if cfg.precision != "auto" else ("bf16-mixed" if cuda else "32-true")
    best_cb: Any = (_BestInMemory() if lean else
                    ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_select", mode="min",
                                    save_last=True, save_top_k=1, auto_insert_metric_name=False))
    callbacks: list[Any] = [best_cb, EarlyStopping(monitor="val_loss", mode="min", patience=cfg.patience)]
    if on_epoch is not None:
        callbacks.append(_EpochHook(on_epoch))
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    loggers: Any = False if lean else [CSVLogger(run_dir / "logs", name="", version=""),
                                       TensorBoardLogger(run_dir / "logs", name="", version="",
                                                         default_hp_metric=False)]
    with _quiet_lightning(not progress):
        trainer = L.Trainer(
            default_root_dir=run_dir, max_epochs=cfg.max_epochs, accelerator=cfg.accelerator, devices=cfg.devices,
            num_nodes=cfg.num_nodes, strategy=cfg.strategy, precision=precision,
            accumulate_grad_batches=cfg.accumulate, callbacks=callbacks, logger=loggers, enable_checkpointing=not lean,
            enable_progress_bar=progress, log_every_n_steps=1, deterministic=False,
            limit_train_batches=cfg.limit_train_batches, enable_model_summary=False,
            num_sanity_val_steps=0, min_epochs=min(cfg.min_epochs, cfg.max_epochs),
        )
        trainer.fit(module, datamodule=data, ckpt_path=str(last) if resume else None)
    if not trainer.is_global_zero:
        return TrainResult(run_dir, run_dir / MODEL_FILE, -1, {}, time.perf_counter() - t0)

    if lean:
        if best_cb.state is not None:  # else: no epoch was validated; the final weights stay
            module.load_state_dict(module.complete_state(best_cb.state))
        best_epoch = best_cb.epoch
    else:
        best_path = best_cb.best_model_path or str(last)
        state = torch.load(best_path, map_location="cpu", weights_only=False)  # our own Lightning file
        module.load_state_dict(module.complete_state(state["state_dict"]))
        best_epoch = int(state.get("epoch", -1))
    val_metrics = export_run(run_dir, module, cache, cfg, best_epoch, int(trainer.current_epoch),
                             device="cuda" if cuda else "cpu", features=features, trained_on=data.model_card())
    return TrainResult(run_dir, run_dir / MODEL_FILE, best_epoch, val_metrics, time.perf_counter() - t0)


def _frozen_encoder(model_cfg: ModelConfig, cfg: TrainConfig) -> Any:
    """The pretrained model whose encoder makes this run's cached features, or None when the run
    trains end to end (see ``TrainConfig.encoder_mode``)."""
    from forensight.models.protocol import FrameFeatureDetector
    from forensight.models.registry import build_model

    if cfg.encoder_mode == "finetune" or (cfg.encoder_mode == "auto" and not model_cfg.weights):
        return None
    model = build_model(model_cfg)
    if isinstance(model, FrameFeatureDetector) and model_cfg.weights:
        return model
    if cfg.encoder_mode == "frozen":
        raise ValueError(f"encoder_mode 'frozen' needs a region model with pretrained encoder weights; "
                         f"{model_cfg.name} has weights={model_cfg.weights!r}")
    return None


def _device(cfg: TrainConfig) -> str:
    return "cuda" if torch.cuda.is_available() and cfg.accelerator in ("auto", "gpu", "cuda") else "cpu"


class _quiet_lightning:
    """Silence Lightning's banners, tips and known-harmless warnings while ``enabled``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._levels: dict[str, int] = {}
        self._warn: Any = None

    def __enter__(self) -> None:
        if not self.enabled:
            return
        import warnings

        for name in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
            lg = logging.getLogger(name)
            self._levels[name] = lg.level
            lg.setLevel(logging.WARNING)
        self._warn = warnings.catch_warnings()
        self._warn.__enter__()
        for pattern in (r".*isinstance\(treespec, LeafSpec\).*", r".*module\(s\) in eval mode.*",
                        r".*does not have many workers.*", r".*exists and is not empty.*"):
            warnings.filterwarnings("ignore", message=pattern)

    def __exit__(self, *exc: object) -> None:
        if not self.enabled:
            return
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        if self._warn is not None:
            self._warn.__exit__(*exc)
