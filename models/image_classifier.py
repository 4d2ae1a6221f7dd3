"""What the ViT and MLP-Mixer families share: where a checkpoint's `.npz` and `labels.txt` are,
checking its arrays against the expected layout, random weights for tests, and the loaded
classifier that `tessera label` runs.

Both families publish plain image classifiers as `.npz` files of '/'-joined flax names, and both
classify the same way, so only the forward pass and the array layout differ per family:

- Images are squashed to the model's resolution (bilinear, antialiased, as big_vision's
  `resize(R)`) and scaled to `value_range`: (-1, 1) for every published ViT and Mixer
  (big_vision's `value_range(-1, 1)`), (0, 1) with `load(path, value_range=(0, 1))`.
- Scores are the softmax of the head's logits; the top k become image-level boxes. Class names
  come from `labels.txt` beside the checkpoint (one per line, in head order), from `class_names`
  (`--classes` / `--classes-file`), else the class indices.
- The embedding is the head's input (pre-logits), L2-normalised.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import jax
import numpy as np

from tessera import fileio
from tessera.models.paligemma import checkpoint as bv_npz
from tessera.models.paligemma.preprocess import preprocess as preprocess_signed
from tessera.models.siglip.zero_shot import top_classes

LABEL_FILE = "labels.txt"
_SHOWN = 6  # arrays named per kind in an error; the rest are counted


class ClassifierCheckpointError(bv_npz.CheckpointError):
    """The file is not a checkpoint of this family, and which arrays say so (one line)."""


def resolve_paths(path: str) -> tuple[str, str | None]:
    """(checkpoint .npz, labels.txt beside it or None) for a `.npz` or a directory holding one."""
    path = path.rstrip("/")
    if path.endswith(".npz"):
        directory, npz = (path.rsplit("/", 1)[0] if "/" in path else "."), path
    else:
        directory = path
        found = sorted(m.path for m in fileio.match_paths(fileio.join(directory, "*.npz")))
        if len(found) != 1:
            raise FileNotFoundError(f"expected exactly one *.npz checkpoint in {directory}, "
                                    f"found {found or 'none'}")
        npz = found[0]
    labels = fileio.join(directory, LABEL_FILE)
    return npz, labels if fileio.exists(labels) else None


def weights_file(path: str, tokenizer: str | None = None) -> str:
    """The classifier's .npz (what a run manifest checksums)."""
    del tokenizer  # classifiers take none
    return resolve_paths(path)[0]


def read_class_names(path: str) -> tuple[str, ...]:
    """One class name per non-empty line, in the head's order."""
    text = fileio.read_bytes(path).decode("utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def read_flat(path_or_bytes, source: str = "") -> dict[str, np.ndarray]:
    """The npz's arrays by name with any `params/` or `opt/target/` prefix dropped."""
    try:
        return bv_npz._strip_prefix(bv_npz.read_npz(path_or_bytes))  # noqa: SLF001
    except bv_npz.CheckpointError as err:
        raise ClassifierCheckpointError(f"{source}: {err}".replace("\n", " ")) from None


def stack_layers(flat: dict, pattern, scanned_prefix: str, source: str = "") -> dict:
    """Per-layer `<...>_{i}/rest` arrays -> `scanned_prefix + rest` with a leading layer axis."""
    where = f"{source}: " if source else ""
    first: dict[str, tuple[str, tuple]] = {}
    for key in sorted(flat):  # one misshapen layer is named, not a numpy stacking error
        match = pattern.match(key)
        if match:
            seen = first.setdefault(match.group(2), (key, flat[key].shape))
            if seen[1] != flat[key].shape:
                raise ClassifierCheckpointError(
                    f"{where}wrong shape: layers disagree, {seen[0]} {seen[1]} but {key} "
                    f"{tuple(flat[key].shape)}")
    try:
        return bv_npz._stack_loop_layers(flat, pattern, scanned_prefix)  # noqa: SLF001
    except bv_npz.CheckpointError as err:
        raise ClassifierCheckpointError(f"{where}{err}") from None


unstack_layers = bv_npz.unstack_loop_layers  # the inverse of `stack_layers`


def write_npz(path: str, flat: dict) -> None:
    """An uncompressed npz, as the released files are; local or gs://, written atomically."""
    import io
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in flat.items()})
    fileio.atomic_write_bytes(path, buffer.getvalue())


def shape_of(flat: dict, key: str, ndim: int, source: str = "") -> tuple[int, ...]:
    """The shape of a size-defining array, or a one-line error naming it."""
    where = f"{source}: " if source else ""
    if key not in flat:
        raise ClassifierCheckpointError(
            f"{where}missing {key} (cannot read the model size from it)")
    if flat[key].ndim != ndim:
        raise ClassifierCheckpointError(
            f"{where}wrong shape {key} {tuple(flat[key].shape)}: expected {ndim} dims")
    return tuple(flat[key].shape)


def _listed(kind: str, names: list[str]) -> str:
    more = f" (+{len(names) - _SHOWN} more)" if len(names) > _SHOWN else ""
    return f"{kind} " + ", ".join(names[:_SHOWN]) + more


def check_layout(flat: dict[str, np.ndarray], expected: dict[str, tuple], what: str,
                 source: str = "") -> None:
    """Raises ClassifierCheckpointError (one line) naming missing, unexpected, misshapen and
    non-float arrays: a silently ignored or defaulted weight would be a wrong model."""
    common = set(expected) & set(flat)
    problems = [_listed(kind, names) for kind, names in (
        ("missing", sorted(set(expected) - set(flat))),
        ("unexpected", sorted(set(flat) - set(expected))),
        ("wrong shape", sorted(f"{k} {tuple(flat[k].shape)} != expected {expected[k]}"
                               for k in common if tuple(flat[k].shape) != expected[k])),
        ("not float", sorted(f"{k} ({flat[k].dtype})" for k in common
                             if not np.issubdtype(flat[k].dtype, np.floating)
                             and flat[k].dtype.name != "bfloat16"))) if names]
    if problems:
        where = f"{source}: " if source else ""
        raise ClassifierCheckpointError(f"{where}not {what}: " + "; ".join(problems))


def random_params(seed: int, shapes: dict[str, tuple], fan_in: Callable[[str, tuple], int],
                  dtype=np.float32) -> dict:
    """Random params for a flat layout, every array perturbed (no zero bias or unit scale can hide
    a transposed kernel in a parity check); kernels scaled by 1/sqrt(fan_in)."""
    rng = np.random.default_rng(seed)
    flat = {}
    for name, shape in sorted(shapes.items()):
        leaf = name.rsplit("/", 1)[-1]
        noise = rng.standard_normal(shape)
        if leaf == "kernel":
            flat[name] = noise / np.sqrt(fan_in(name, shape))
        elif leaf == "scale":
            flat[name] = 1.0 + 0.1 * noise
        elif leaf == "bias":
            flat[name] = 0.05 * noise
        else:  # pos_embedding, cls, probe
            flat[name] = 0.1 * noise
    return bv_npz.unflatten({k: v.astype(dtype) for k, v in flat.items()})


def preprocess(image: np.ndarray, resolution: int,
               value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
    """uint8 HxWx3 -> float32 [resolution, resolution, 3] in `value_range`."""
    x = preprocess_signed(image, resolution)  # [-1, 1]
    lo, hi = value_range
    return x if (lo, hi) == (-1.0, 1.0) else (lo + (x + 1.0) * ((hi - lo) / 2.0)).astype(np.float32)


@dataclasses.dataclass
class ImageClassifier:
    """A loaded ViT or Mixer: `forward(params, images) -> (logits or None, pre-logits)` jitted
    once, run in batches padded to `batch_size` (one compiled shape per process)."""
    params: dict
    cfg: object  # the family's frozen config: image_size, num_classes, value_range
    forward: Callable
    class_names: tuple[str, ...] = ()
    batch_size: int = 8
    name: str = ""

    @classmethod
    def build(cls, params: dict, cfg, forward: Callable, *, labels_path: str | None = None,
              class_names: Sequence[str] = (), batch_size: int = 8, name: str = "",
              value_range: tuple[float, float] | None = None) -> "ImageClassifier":
        """Jits `forward(params, images, cfg=cfg)`; names the classes (see the module doc).

        Raises:
          ValueError: the names do not match the head's classes one to one.
        """
        if value_range is not None:
            cfg = dataclasses.replace(cfg, value_range=tuple(float(v) for v in value_range))
        names, origin = tuple(class_names), "class_names"
        if not names and labels_path:
            names, origin = read_class_names(labels_path), labels_path
        if names and len(names) != cfg.num_classes:
            raise ValueError(f"{origin} names {len(names)} classes but the checkpoint's head has "
                             f"{cfg.num_classes or 'none (no head/kernel)'}")
        if not names:
            names = tuple(str(i) for i in range(cfg.num_classes))
        params = jax.tree_util.tree_map(jax.numpy.asarray, params)
        return cls(params, cfg, jax.jit(functools.partial(forward, cfg=cfg)), names,
                   batch_size, name)

    @property
    def resolution(self) -> int:
        return self.cfg.image_size

    def logits_and_features(self, images: Sequence[np.ndarray]):
        """HxWx3 uint8 images -> (logits [B, C] or None without a head, pre-logits [B, D])."""
        r = self.resolution
        batch = (np.stack([preprocess(im, r, self.cfg.value_range) for im in images])
                 if len(images) else np.zeros((0, r, r, 3), np.float32))
        logits, features = [], []
        for start in range(0, len(batch), self.batch_size):
            chunk = batch[start:start + self.batch_size]
            pad = np.zeros((self.batch_size - len(chunk),) + chunk.shape[1:], chunk.dtype)
            out_logits, out_features = self.forward(self.params, np.concatenate([chunk, pad]))
            features.append(np.asarray(out_features, np.float32)[:len(chunk)])
            if out_logits is not None:
                logits.append(np.asarray(out_logits, np.float32)[:len(chunk)])
        if not features:  # no images: shapes from one padded call would cost a compile
            return (np.zeros((0, self.cfg.num_classes), np.float32) if self.cfg.num_classes
                    else None), np.zeros((0, 0), np.float32)
        return (np.concatenate(logits) if logits else None), np.concatenate(features)

    def predict(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(L2-normalised embeddings [B, D], softmax scores [B, C] or None without a head)."""
        logits, features = self.logits_and_features(images)
        norms = np.linalg.norm(features, axis=-1, keepdims=True)
        embeddings = features / np.maximum(norms, 1e-12)
        if logits is None:
            return embeddings, None
        z = np.exp(logits.astype(np.float64) - logits.max(axis=-1, keepdims=True))
        return embeddings, z / z.sum(axis=-1, keepdims=True)

    def top_classes(self, scores: np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k best (name, score) of one image, best first (ties keep the class order)."""
        return top_classes(scores, self.class_names, k)


TINY_CLASSES = ("red", "green", "blue", "grey", "noise")  # the tiny variants' labels.txt


def write_tiny_files(directory: str, filename: str, write_checkpoint: Callable, seed: int) -> str:
    """A family's tiny variant on disk: `write_checkpoint(path, seed=seed)` then `labels.txt`
    beside it; returns the checkpoint path (`FAMILY:PATH` loads it)."""
    path = fileio.join(directory, filename)
    write_checkpoint(path, seed=seed)
    fileio.atomic_write_text(fileio.join(directory, LABEL_FILE), "\n".join(TINY_CLASSES) + "\n")
    return path
