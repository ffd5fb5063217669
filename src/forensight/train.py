"""Training on Lightning with honest model selection.

The model is chosen on the VALIDATION split only (early stopping and the best checkpoint on
validation loss; the decision threshold on validation scores). The test split is never read
here. A run directory holds::

    config.yaml            train + model + preprocessing config (and the preprocessing hash)
    logs/                  CSV and TensorBoard logs
    checkpoints/last.ckpt  Lightning state for --resume
    checkpoints/best.ckpt  the best epoch on validation loss
    model.pt               the best weights + configs + threshold, loadable with weights_only=True
    val_metrics.json       validation metrics of the selected model

Batches arrive as uint8; normalisation, resizing and augmentation run on the device.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from forensight.cache import Cache
from forensight.config import from_dict, load_yaml, save_yaml, to_dict
from forensight.datasets.clips import ClipDataset, augment_batch, collate_clips
from forensight.inference import ClipPredictions, forward_detector, predict_loader, prepare_batch
from forensight.modelfile import MODEL_FILE, save_model_file

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class TrainConfig:
    """How a detector is trained.

    Attributes:
        preset: registered model preset (``forensight.models.list_models()``) or a YAML path.
        region: override the preset's region (frame / full / eyes / mouth / lips).
        input_size: override the preset's input side in pixels (crops are resized on the device).
        max_epochs, patience: early stopping on validation loss with this patience (epochs).
        batch_size, accumulate: clips per step and gradient-accumulation steps.
        lr, weight_decay: AdamW.
        balance: "loss" (positive-class weight = #real / #fake), "sampler" (class-balanced
            sampling) or "none".
        clip_len: frames per training clip; None = the model's (25 for LipForensics, the whole
            sampled sequence for region models).
        max_clips: clips per video (0 = all).
        max_frames: frames read from each cached video's start (0 = all; 110 = FF++ protocol).
        init: the official LipForensics checkpoint (``lipforensics_ff.pth``) to start from.
        freeze: LipForensics fine-tuning recipe: "frontend_trunk" (paper) or "none".
        precision: "auto" (bf16-mixed on GPU, 32 on CPU) or any Lightning precision.
        accelerator, devices, num_nodes, strategy: Lightning's (DDP for several GPUs / nodes).
        num_workers: data-loader worker processes.
        augment: clip-consistent flips and brightness on the device.
        seed: seeds Python, NumPy and torch (and the loaders).
        limit_train_batches: Lightning's (1.0 = all), for quick runs.
    """

    preset: str = "region_mobile_attention"
    region: str | None = None
    input_size: int | None = None
    max_epochs: int = 20
    patience: int = 5
    batch_size: int = 8
    accumulate: int = 1
    lr: float = 1e-3
    weight_decay: float = 1e-4
    balance: str = "loss"
    clip_len: int | None = None
    max_clips: int = 0
    max_frames: int = 0
    init: str | None = None
    freeze: str = "frontend_trunk"
    precision: str = "auto"
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    num_workers: int = 0
    augment: bool = True
    seed: int = 0
    limit_train_batches: float = 1.0

    def __post_init__(self) -> None:
        if self.balance not in ("loss", "sampler", "none"):
            raise ValueError(f"balance must be loss, sampler or none, got {self.balance!r}")
        if self.freeze not in ("frontend_trunk", "none"):
            raise ValueError(f"freeze must be frontend_trunk or none, got {self.freeze!r}")
        for k in ("max_epochs", "patience", "batch_size", "accumulate"):
            if int(getattr(self, k)) < 1:
                raise ValueError(f"{k} must be >= 1")


def resolve_model_config(cfg: TrainConfig) -> Any:
    """The model config of a training run: the preset (or YAML) with the run's overrides."""
    from forensight.models.registry import get_model_config, load_model_config

    over: dict[str, Any] = {}
    if cfg.region:
        over["region"] = cfg.region
    if cfg.input_size:
        over["input_size"] = int(cfg.input_size)
    p = str(cfg.preset)
    mc = load_model_config(p, **over) if p.endswith((".yaml", ".yml")) else get_model_config(p, **over)
    if mc.arch == "lipforensics":
        opts = dict(mc.options)
        opts["freeze"] = cfg.freeze
        mc = mc.replace(options=opts, weights=cfg.init or mc.weights)
    elif cfg.init:
        raise ValueError("--init is for LipForensics presets; region encoders take ImageNet weights "
                         "via the model config's `weights`")
    return mc


def model_clip_len(model_cfg: Any) -> int | None:
    """Frames per input clip a model reads: LipForensics 25-frame clips; region models None
    (the whole sampled sequence of a video is one clip)."""
    return int(model_cfg.num_frames) if model_cfg.arch == "lipforensics" else None


def clip_len_for(cfg: TrainConfig, model_cfg: Any) -> int | None:
    """The training clip length: the run's override, else the model's."""
    return cfg.clip_len if cfg.clip_len is not None else model_clip_len(model_cfg)


def make_dataset(cache: Cache, split: str, model_cfg: Any, clip_len: int | None, max_clips: int = 0,
                 max_frames: int = 0) -> ClipDataset:
    """The clips of one split for a model (LipForensics: 88-px centre crops of the 96-px lips)."""
    ids = cache.video_ids(split=split)
    if not ids:
        raise ValueError(f"the cache {cache.root} has no processed videos in split {split!r}")
    if model_cfg.region not in cache.config.regions:
        raise ValueError(f"the model reads region {model_cfg.region!r}, but the cache holds "
                         f"{list(cache.config.regions)}; preprocess with --regions {model_cfg.region}")
    crop = int(model_cfg.input_size) if model_cfg.region == "lips" else None
    ds = ClipDataset(cache, ids, model_cfg.region, clip_len=clip_len, max_clips=max_clips,
                     max_frames=max_frames, crop=crop)
    if len(ds) == 0:
        raise ValueError(f"split {split!r}: no video is long enough for one {clip_len}-frame clip")
    return ds


def _loader(ds: ClipDataset, batch_size: int, shuffle: bool, num_workers: int, seed: int,
            sampler: Any = None) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
        num_workers=num_workers, collate_fn=collate_clips, generator=g, drop_last=False,
        persistent_workers=num_workers > 0, pin_memory=torch.cuda.is_available())


import lightning as L


class DetectorModule(L.LightningModule):
    """Model + loss + optimiser; batches are uint8 and get normalised here, on the device."""

    def __init__(self, model_cfg: dict[str, Any], train_cfg: dict[str, Any], pos_weight: float = 1.0,
                 preprocess_hash: str = "") -> None:
        super().__init__()
        from forensight.models.registry import ModelConfig, build_from_config

        self.save_hyperparameters()
        self.model_cfg = ModelConfig.from_dict(model_cfg)
        self.train_cfg = from_dict(TrainConfig, train_cfg)
        self.model = build_from_config(self.model_cfg)
        self.register_buffer("pos_weight", torch.tensor(float(pos_weight)))
        self._val = ClipPredictions()
        self._gen = torch.Generator().manual_seed(self.train_cfg.seed)

    def _step(self, batch: dict[str, Any], train: bool) -> tuple[torch.Tensor, Any]:
        frames = batch["frames"]
        if train and self.train_cfg.augment:
            frames = augment_batch(frames, generator=self._gen)
        x = prepare_batch(frames, self.model_cfg, channels_last=self.device.type == "cuda")
        out = forward_detector(self.model, x, batch["lengths"])
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
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=len(batch["label"]))
        self._val.extend(batch, out)

    def on_validation_epoch_end(self) -> None:
        preds = _gather_predictions(self._val)
        _, y, s = preds.video_scores()
        if len(set(y.tolist())) == 2:
            from forensight.metrics import auc

            self.log("val_auc", float(auc(y, s)), prog_bar=True, sync_dist=False, rank_zero_only=False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params = [p for p in self.model.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.train_cfg.lr, weight_decay=self.train_cfg.weight_decay)

    def train(self, mode: bool = True) -> DetectorModule:
        super().train(mode)
        # keep frozen LipForensics parts (front end + trunk) in eval mode: BN statistics stay official
        keep = getattr(self.model, "frozen_modules", None)
        if mode and callable(keep):
            for m in keep():
                m.eval()
        return self


def _gather_predictions(p: ClipPredictions) -> ClipPredictions:
    """All ranks' predictions under DDP (identity on one process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return p
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, p)
    out = ClipPredictions()
    for q in parts:
        for name in ("video_ids", "labels", "logits", "starts", "weights", "frame_indices"):
            getattr(out, name).extend(getattr(q, name))
    return out


@dataclass
class TrainResult:
    """Where a training run left its files, and its validation figures."""

    run_dir: Path
    model_path: Path
    best_epoch: int
    val_metrics: dict[str, Any]
    seconds: float


def train(cache_root: str | Path, run_dir: str | Path, cfg: TrainConfig, resume: bool = False,
          progress: bool = True) -> TrainResult:
    """Train on the cache's train split, select on its val split, write the run directory."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    from forensight.metrics import choose_threshold, compute_all

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
    if resume and not last.is_file():
        raise FileNotFoundError(f"nothing to resume: {last} does not exist")
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    cache = Cache.open(cache_root)
    model_cfg = resolve_model_config(cfg)
    clip_len = clip_len_for(cfg, model_cfg)
    train_ds = make_dataset(cache, "train", model_cfg, clip_len, cfg.max_clips, cfg.max_frames)
    val_ds = make_dataset(cache, "val", model_cfg, clip_len, cfg.max_clips, cfg.max_frames)
    labels = train_ds.labels()
    n_fake, n_real = int(labels.sum()), int((1 - labels).sum())
    if n_fake == 0 or n_real == 0:
        raise ValueError(f"the train split needs both classes, has {n_real} real and {n_fake} fake clips")
    pos_weight = n_real / n_fake if cfg.balance == "loss" else 1.0
    sampler = None
    if cfg.balance == "sampler":
        w = np.where(labels == 1, 0.5 / n_fake, 0.5 / n_real)
        sampler = torch.utils.data.WeightedRandomSampler(torch.tensor(w), num_samples=len(labels),
                                                         replacement=True,
                                                         generator=torch.Generator().manual_seed(cfg.seed))

    all_cfg = {"train": to_dict(cfg), "model": model_cfg.to_dict(), "preprocess": cache.config.to_dict(),
               "preprocess_hash": cache.config.hash, "cache": str(Path(cache_root).resolve()),
               "data": {"train_clips": len(train_ds), "train_real": n_real, "train_fake": n_fake,
                        "val_clips": len(val_ds), "too_short": train_ds.too_short + val_ds.too_short}}
    if launcher:
        save_yaml(all_cfg, run_dir / "config.yaml")

    module = DetectorModule(model_cfg.to_dict(), to_dict(cfg), pos_weight=pos_weight,
                            preprocess_hash=cache.config.hash)
    cuda = torch.cuda.is_available() and cfg.accelerator in ("auto", "gpu", "cuda")
    precision = cfg.precision if cfg.precision != "auto" else ("bf16-mixed" if cuda else "32-true")
    best_cb = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_loss", mode="min",
                              save_last=True, save_top_k=1, auto_insert_metric_name=False)
    callbacks: list[Any] = [best_cb, EarlyStopping(monitor="val_loss", mode="min", patience=cfg.patience)]
    if progress:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    trainer = L.Trainer(
        default_root_dir=run_dir, max_epochs=cfg.max_epochs, accelerator=cfg.accelerator, devices=cfg.devices,
        num_nodes=cfg.num_nodes, strategy=cfg.strategy, precision=precision,
        accumulate_grad_batches=cfg.accumulate, callbacks=callbacks,
        logger=[CSVLogger(run_dir / "logs", name="", version=""),
                TensorBoardLogger(run_dir / "logs", name="", version="", default_hp_metric=False)],
        enable_progress_bar=progress, log_every_n_steps=1, deterministic=False,
        limit_train_batches=cfg.limit_train_batches, enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, _loader(train_ds, cfg.batch_size, True, cfg.num_workers, cfg.seed, sampler),
                _loader(val_ds, cfg.batch_size, False, cfg.num_workers, cfg.seed),
                ckpt_path=str(last) if resume else None)
    if not trainer.is_global_zero:
        return TrainResult(run_dir, run_dir / MODEL_FILE, -1, {}, time.perf_counter() - t0)

    best_path = best_cb.best_model_path or str(last)
    state = torch.load(best_path, map_location="cpu", weights_only=False)  # our own Lightning file
    module.load_state_dict(state["state_dict"])
    best_epoch = int(state.get("epoch", -1))
    device = "cuda" if cuda else "cpu"
    val_preds = predict_loader(module.model, _loader(val_ds, cfg.batch_size, False, 0, cfg.seed), model_cfg,
                               device=device)
    _, y, s = val_preds.video_scores()
    threshold = choose_threshold(y, s, rule="eer") if len(set(y.tolist())) == 2 else 0.0
    clip_y, clip_s = np.asarray(val_preds.labels), np.asarray(val_preds.logits)
    val_metrics = (compute_all(y, s, threshold=threshold, clip_y=clip_y, clip_s=clip_s)
                   if len(set(y.tolist())) == 2 else {"note": "validation split has one class"})
    val_metrics.update({"best_epoch": best_epoch, "epochs_run": int(trainer.current_epoch),
                        "threshold_rule": "eer on validation video scores", "threshold": float(threshold)})
    save_model_file(run_dir / MODEL_FILE, module.model, model_cfg, cache.config, cfg, threshold, val_metrics)
    (run_dir / "val_metrics.json").write_text(json.dumps(val_metrics, indent=2, default=float))
    return TrainResult(run_dir, run_dir / MODEL_FILE, best_epoch, val_metrics, time.perf_counter() - t0)


def load_train_config(path: str | Path, **overrides: Any) -> TrainConfig:
    """A TrainConfig from YAML (a ``train:`` section or a flat mapping), with overrides."""
    data = load_yaml(path)
    data = dict(data.get("train", data))
    data.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(TrainConfig, data)
