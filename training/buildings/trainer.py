"""Training loop for the building U-Net: supervised teacher, then a self-trained student.

Phase 1 trains on labelled tiles with the separation-weighted BCE (and mixup unless disabled).
Phase 2 (self-training, Sirko et al. 2021 after Xie et al.'s noisy student) continues from the
teacher: each step adds, to the supervised loss, the KL divergence between the frozen teacher's
per-pixel soft labels on a clean unlabelled crop and the student's prediction on a photometrically
noised copy of the same crop. Data comes from `transforms.buildings_training` (numpy).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tessera.models import unet
from tessera.training.buildings import augment as aug
from tessera.training.buildings import data as bt

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000  # teacher (supervised) steps
    student_steps: int = 2000  # self-training steps; used only when self_training and unlabelled tiles
    batch_size: int = 16
    crop: int = 256
    chip: int = 512  # tiles are cut into chip x chip pieces held on the device; crops come from them
    lr: float = 2e-3
    weight_decay: float = 1e-4
    mixup: bool = True
    mixup_alpha: float = 0.4
    self_training: bool = True
    kl_weight: float = 1.0
    student_lr_scale: float = 0.5  # the student continues from the teacher, at a lower rate
    base: int = 16
    max_channels: int = 128
    depth: int = 4
    seed: int = 0
    log_every: int = 100
    max_seconds: float | None = None  # per phase; stops a phase early (recorded in the history)
    checkpoint_every: int = 0  # hand the params to `on_checkpoint` every this many steps (0: never)


def weighted_bce(logits, targets, weights):
    """Per-pixel binary cross-entropy with the separation weight map, normalized by the weights."""
    losses = optax.sigmoid_binary_cross_entropy(logits, targets)
    return jnp.sum(losses * weights) / jnp.sum(weights)


def bernoulli_kl(teacher_prob, student_logits, valid=None):
    """Mean per-pixel KL(teacher || student) between Bernoulli distributions (stable in logits).

    `valid` (0/1 per pixel) leaves padding out of the mean.
    """
    p = jnp.clip(teacher_prob, 1e-6, 1 - 1e-6)
    log_q1 = jax.nn.log_sigmoid(student_logits)
    log_q0 = jax.nn.log_sigmoid(-student_logits)
    kl = p * (jnp.log(p) - log_q1) + (1 - p) * (jnp.log1p(-p) - log_q0)
    if valid is None:
        return jnp.mean(kl)
    return jnp.sum(kl * valid) / jnp.maximum(jnp.sum(valid), 1.0)


def _optimizer(cfg: TrainConfig, steps: int, lr: float):
    warmup = max(1, min(200, steps // 10))
    sched = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(steps, warmup + 1), lr * 0.02)
    return optax.adamw(sched, weight_decay=cfg.weight_decay)


def _make_steps(model, tx, cfg: TrainConfig):
    def labelled_batch(key, chips, mix):
        k_crop, k_photo = jax.random.split(key)
        b = aug.sample_crops(k_crop, chips, cfg.batch_size, cfg.crop)
        b["image"] = aug.photometric(k_photo, b["image"])
        return aug.mixup(b, *mix) if cfg.mixup else b

    def sup_loss(params, b):
        return weighted_bce(unet.logits_fn(model, params, b["image"]), b["mask"], b["weights"])

    @jax.jit
    def sup_step(params, opt_state, chips, key, mix):
        loss, grads = jax.value_and_grad(sup_loss)(params, labelled_batch(key, chips, mix))
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, {"loss": loss}

    @jax.jit
    def student_step(params, opt_state, teacher, chips, uchips, key, mix):
        k_lab, k_crop, k_noise = jax.random.split(key, 3)
        b = labelled_batch(k_lab, chips, mix)
        u = aug.sample_crops(k_crop, uchips, cfg.batch_size, cfg.crop)
        noisy = aug.photometric(k_noise, u["image"])
        soft = jax.lax.stop_gradient(jax.nn.sigmoid(unet.logits_fn(model, teacher, u["image"])))

        def loss_fn(p):
            sup = sup_loss(p, b)
            kl = bernoulli_kl(soft, unet.logits_fn(model, p, noisy), u["weights"])
            return sup + cfg.kl_weight * kl, (sup, kl)

        (loss, (sup, kl)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, {"loss": loss, "sup": sup, "kl": kl}

    return sup_step, student_step


def _run_phase(name, steps, step_fn, cfg, history, on_log: Callable | None,
               on_checkpoint: Callable[[int], None] | None = None):
    start = time.time()
    for step in range(1, steps + 1):
        metrics = step_fn(step)
        if on_checkpoint and cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            on_checkpoint(step)
        if step % cfg.log_every == 0 or step == steps:
            row = {"phase": name, "step": step, "seconds": round(time.time() - start, 1),
                   **{k: round(float(v), 5) for k, v in metrics.items()}}
            history.append(row)
            log.info("%s", row)
            if on_log:
                on_log(row)
        if cfg.max_seconds is not None and time.time() - start > cfg.max_seconds:
            history.append({"phase": name, "stopped_early_at_step": step, "seconds": round(time.time() - start, 1)})
            log.warning("%s phase stopped at step %d (max_seconds)", name, step)
            return step
    return steps


def train(cfg: TrainConfig, labelled: list[bt.Tile], unlabelled: list[bt.Tile] = (),
          on_phase_end: Callable[[str, dict], None] | None = None, on_log: Callable | None = None,
          init_params: dict | None = None,
          on_checkpoint: Callable[[str, int, dict], None] | None = None):
    """Train a U-Net; returns (params, summary dict with the history and what actually ran).

    `init_params` (a checkpoint's params, e.g. the shipped model's) fine-tunes from them instead of
    starting fresh; the architecture then comes from the checkpoint, not from `cfg`.
    `on_checkpoint(phase, step, params)` gets a snapshot every `cfg.checkpoint_every` steps: on
    real imagery a model can get worse while its loss on rendered scenes still falls, so the step
    to keep is chosen on real dev data, not by the loss.

    Randomness is keyed on cfg.seed only (init, crops, mixup, augmentation), so a rerun with the same
    data and config on the same kind of device repeats the same batches.
    """
    if not labelled:
        raise ValueError("no labelled tiles")
    if cfg.chip < cfg.crop:
        raise ValueError(f"chip ({cfg.chip}) must be >= crop ({cfg.crop})")
    if init_params is not None:
        model = unet.Model(**unet.config_from_params(init_params))
        params = unet.to_float32(init_params)
    else:
        model = unet.Model(base=cfg.base, max_channels=cfg.max_channels, depth=cfg.depth)
        params = unet.init_params(model, cfg.seed, size=unet.MULTIPLE * 2)
    history: list[dict] = []
    summary = {"params": unet.count_params(params), "device": str(jax.devices()[0].device_kind),
               "history": history, "phases": {}}
    chips = jax.device_put(bt.chip_tiles(list(labelled), cfg.chip))
    summary["labelled_chips"] = int(chips["image"].shape[0])
    base_key = jax.random.PRNGKey(cfg.seed)

    tx = _optimizer(cfg, cfg.steps, cfg.lr)
    state = {"params": params, "opt": tx.init(params)}
    sup_step, _ = _make_steps(model, tx, cfg)

    def mix(phase, step):  # mixup coefficients, keyed like everything else (ignored when mixup is off)
        return aug.mixup_params(np.random.default_rng([cfg.seed, phase, step]), cfg.batch_size, cfg.mixup_alpha)

    def teacher_step(step):
        key = jax.random.fold_in(jax.random.fold_in(base_key, 1), step)
        state["params"], state["opt"], m = sup_step(state["params"], state["opt"], chips, key, mix(1, step))
        return m

    def snapshot(phase):
        return (lambda step: on_checkpoint(phase, step, state["params"])) if on_checkpoint else None

    ran = _run_phase("teacher", cfg.steps, teacher_step, cfg, history, on_log, snapshot("teacher"))
    summary["phases"]["teacher"] = {"steps": ran}
    if on_phase_end:
        on_phase_end("teacher", state["params"])

    if not cfg.self_training:
        summary["phases"]["student"] = "disabled (--no-self-training)"
        return state["params"], summary
    if not unlabelled:
        summary["phases"]["student"] = "skipped: no unlabelled tiles"
        log.warning("self-training skipped: no unlabelled tiles given")
        return state["params"], summary

    uchips = jax.device_put(bt.chip_tiles(list(unlabelled), cfg.chip))
    summary["unlabelled_chips"] = int(uchips["image"].shape[0])
    teacher = jax.tree_util.tree_map(jnp.array, state["params"])
    tx = _optimizer(cfg, cfg.student_steps, cfg.lr * cfg.student_lr_scale)
    state["opt"] = tx.init(state["params"])
    _, student_step = _make_steps(model, tx, cfg)

    def student(step):
        key = jax.random.fold_in(jax.random.fold_in(base_key, 2), step)
        state["params"], state["opt"], m = student_step(state["params"], state["opt"], teacher, chips,
                                                        uchips, key, mix(2, step))
        return m

    ran = _run_phase("student", cfg.student_steps, student, cfg, history, on_log, snapshot("student"))
    summary["phases"]["student"] = {"steps": ran}
    if on_phase_end:
        on_phase_end("student", state["params"])
    return state["params"], summary


def pixel_scores(params, model_cfg: dict, tiles: list[bt.Tile], threshold: float = 0.5) -> dict[str, float]:
    """Pixel IoU/precision/recall of thresholded probabilities on labelled tiles (a quick check)."""
    model = unet.Model(**model_cfg)
    fn = jax.jit(lambda p, x: unet.probability_fn(model, p, x))
    tp = fp = fn_ = 0
    for t in tiles:
        h, w = t.image.shape[:2]
        hh, ww = h - h % unet.MULTIPLE, w - w % unet.MULTIPLE
        prob = np.asarray(fn(params, t.image[None, :hh, :ww].astype(np.float32) / 255.0))[0]
        pred, truth = prob >= threshold, t.mask[:hh, :ww] > 0
        tp += int((pred & truth).sum())
        fp += int((pred & ~truth).sum())
        fn_ += int((~pred & truth).sum())
    return {"pixel_iou": tp / max(tp + fp + fn_, 1), "pixel_precision": tp / max(tp + fp, 1),
            "pixel_recall": tp / max(tp + fn_, 1)}
