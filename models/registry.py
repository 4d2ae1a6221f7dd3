"""The one way to find a model: `FAMILY:PATH` -> loader, tiny variant and Beam `ModelHandler`.

    family      used by             PATH
    unet        buildings           flax msgpack (a bare path means unet:PATH; default: shipped)
    small_cnn   cnn-zoo             ZOO/weights.npy#ROW, or a .msgpack/.npz of one network
    seq2seq     mcd (baselines)     .msgpack with its .json sidecar (config and vocabularies)
    ocr         label               none: PP-OCRv4 ships inside the rapidocr wheel
    paligemma   label               big_vision .npz (tokenizer beside it) or a directory of both;
                                    or an explicit TOKENIZER.model after a comma
    savedmodel  label               a TF SavedModel directory (any image classifier)
    siglip      label               big_vision two-tower .npz (tokenizer beside it) or a directory
                                    of both, or TOKENIZER.model after a comma; sigmoid scores
    lit         label               the same files; softmax scores over the classes (LiT, CLIP)
    gemini      label               a Gemini model name (gemini-2.5-flash): one API request per
                                    image, credentials from the environment
    vit         label               ViT classifier .npz (big_vision or original ViT/AugReg layout)
                                    or a directory holding one (class names from labels.txt beside
                                    it), or a Hugging Face ViT directory (safetensors)
    mixer       label               MLP-Mixer .npz as released, or a directory holding one; the same
    vmoe        label               V-MoE sharded checkpoint as released (PREFIX, PREFIX.index or a
                                    directory holding one) or its arrays as .npz; --capacity-ratio
    owlvit      label               OWL-ViT detector: scenic flax checkpoint (CLIP BPE file or
                                    tokenizer.json beside it, or TOKENIZER after a comma), or a
                                    Hugging Face OwlViTForObjectDetection directory; --queries

Every family module exposes `load(path)` and `write_tiny(directory, seed=0) -> path`: a tiny
checkpoint in the family's real format, which tests load through the same code as real ones
(`write_tiny_spec` returns the `FAMILY:PATH` string for it). Families and handlers are imported
only when named, so an `ocr` run never imports JAX or TensorFlow.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # handlers (and Beam) are imported only when a model is built
    from apache_beam.ml.inference.base import ModelHandler


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A parsed `--model` string."""
    family: str
    path: str | None = None
    tokenizer: str | None = None

    @property
    def name(self) -> str:
        return self.family if self.path is None else f"{self.family}:{self.path}"


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family: where its code lives, which workloads run it and how PATH is read.

    module: exposes `write_tiny(directory, seed=0) -> path` and, unless `loader` names another
      `module:function`, `load(path, **kw)`.
    handler: `(spec, batch_size, accelerator, options) -> ModelHandler`.
    """
    name: str
    module: str
    workloads: tuple[str, ...]
    handler: Callable[..., "ModelHandler"]
    path_help: str = "PATH"
    takes_path: bool = True
    loader: str | None = None
    takes_tokenizer: bool = False  # PATH may end in `,TOKENIZER.model`
    # `module:function(path)` that checks the model can be used, for families whose PATH is no
    # file (gemini:MODEL: credentials); without it, PATH must exist
    check: str | None = None
    # `module:function(path, tokenizer)` -> the file a run manifest checksums (None: nothing)
    weights: str | None = None

    def load_fn(self) -> Callable:
        module, _, name = (self.loader or f"{self.module}:load").partition(":")
        return getattr(importlib.import_module(module), name)


_FAMILIES: dict[str, Family] = {}


def weights_file(spec: ModelSpec) -> str | None:
    """The one file that identifies the model's weights (its checksum goes into run manifests)."""
    family = get(spec.family)
    if not family.weights or spec.path is None:
        return None
    module, _, name = family.weights.partition(":")
    return getattr(importlib.import_module(module), name)(spec.path, spec.tokenizer)


def register(family: Family, *, replace: bool = False) -> Family:
    """Add a family; a second family under the same name is refused unless `replace`."""
    if family.name in _FAMILIES and not replace:
        raise ValueError(f"model family {family.name!r} is already registered")
    _FAMILIES[family.name] = family
    return family


def get(name: str) -> Family:
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; expected one of: "
                         f"{', '.join(sorted(_FAMILIES))}") from None


def names(workload: str | None = None) -> list[str]:
    return sorted(n for n, f in _FAMILIES.items() if workload is None or workload in f.workloads)


def usage(workload: str) -> str:
    """`ocr | paligemma:PATH | ...`: the --model forms a workload accepts."""
    return " | ".join(n if not _FAMILIES[n].takes_path else f"{n}:{_FAMILIES[n].path_help}"
                      for n in names(workload))


def parse(spec: str, *, workload: str | None = None, default_family: str | None = None) -> ModelSpec:
    """Parse a `--model` string; with `default_family`, a bare path (local or gs://) means it.

    Raises:
        ValueError: unknown family, a family the workload cannot run, or a missing/extra PATH.
    """
    spec = spec.strip()
    family, _, rest = spec.partition(":")
    if family.lower() not in _FAMILIES:  # also gs://..., s3://...: not family names
        if default_family is None:
            expected = usage(workload) if workload else ", ".join(sorted(_FAMILIES))
            raise ValueError(f"unknown model {spec!r}; expected one of: {expected}")
        family, rest = default_family, spec
    family = family.lower()
    info = get(family)
    if workload is not None and workload not in info.workloads:
        raise ValueError(f"model family {family!r} does not run in `{workload}`; expected one of: "
                         f"{usage(workload)}")
    if not info.takes_path:
        if rest:
            raise ValueError(f"`{family}` takes no path")
        return ModelSpec(family)
    if not rest:
        raise ValueError(f"`{family}` needs a path: {family}:{info.path_help}")
    if info.takes_tokenizer:
        ckpt, _, tok = rest.partition(",")
        return ModelSpec(family, ckpt, tok or None)
    return ModelSpec(family, rest)


def _as_spec(spec: str | ModelSpec, **parse_kw) -> ModelSpec:
    return parse(spec, **parse_kw) if isinstance(spec, str) else spec


def load(spec: str | ModelSpec, **kwargs) -> Any:
    """The loaded model (what the family's `load` returns), on this process."""
    spec = _as_spec(spec)
    return get(spec.family).load_fn()(spec.path, **kwargs)


def write_tiny(family: str, directory: str, seed: int = 0) -> str | None:
    """Write the family's tiny checkpoint under `directory` in its real format; returns its path."""
    module = importlib.import_module(get(family).module)
    return module.write_tiny(directory, seed=seed)


def write_tiny_spec(family: str, directory: str, seed: int = 0) -> str:
    """The `--model` string of a freshly written tiny checkpoint of `family`."""
    path = write_tiny(family, directory, seed)
    return family if path is None else f"{family}:{path}"


def check_files(spec: str | ModelSpec) -> None:
    """Fail on the driver, before any worker starts, when the model's files are not there.

    Raises:
        ValueError: PATH (or its tokenizer, or a SavedModel's saved_model.pb) does not exist;
            the message says what `--model` expects.
    """
    from tessera import fileio
    spec = _as_spec(spec)
    info = get(spec.family)
    if info.check:
        module, _, name = info.check.partition(":")
        getattr(importlib.import_module(module), name)(spec.path)
        return
    if not info.takes_path:
        return
    wanted = [spec.path] + ([spec.tokenizer] if spec.tokenizer else [])
    if spec.family == "savedmodel":
        wanted = [fileio.join(spec.path, "saved_model.pb")]
    for path in wanted:
        if not (fileio.exists(path) or fileio.match_paths(fileio.join(path, "*"))):  # gs:// dirs
            raise ValueError(f"--model {spec.family}:{spec.path}: {path} does not exist "
                             f"(expected {spec.family}:{info.path_help})")


def make_handler(spec: str | ModelSpec, *, workload: str | None = None,
                 default_family: str | None = None, batch_size: int = 8,
                 accelerator: str | None = None, **options) -> "ModelHandler":
    """The ModelHandler for `spec`; `options` are family-specific (resolution, top_k, ...)."""
    spec = _as_spec(spec, workload=workload, default_family=default_family)
    return get(spec.family).handler(spec, batch_size, accelerator, options)


def jax_handler(spec: ModelSpec, batch_size: int, accelerator: str | None, options: dict):
    """Dense JAX families (arrays in, arrays out) through the shared JaxModelHandler."""
    from tessera.models.handlers.jax_model import JaxModelHandler
    return JaxModelHandler(get(spec.family).load_fn(), spec.path,
                           bucket_sizes=options.get("bucket_sizes") or (1, batch_size),
                           min_batch_size=1, max_batch_size=batch_size, accelerator=accelerator)


def _ocr(spec: ModelSpec, batch_size: int, accelerator: str | None, options: dict):
    from tessera.models.handlers.ocr import OcrModelHandler
    return OcrModelHandler(accelerator=accelerator, max_batch_size=batch_size)


def _paligemma(spec: ModelSpec, batch_size: int, accelerator: str | None, options: dict):
    from tessera.models.handlers.paligemma import PaliGemmaModelHandler  # JAX only when asked for
    kwargs = {k: v for k, v in options.items() if v is not None
              and k in ("resolution", "max_decode_len")}
    kwargs.update(batch_size=batch_size, accelerator=accelerator, model_name=spec.name)
    if spec.tokenizer:
        return PaliGemmaModelHandler(spec.path, spec.tokenizer, **kwargs)
    return PaliGemmaModelHandler.from_path(spec.path, **kwargs)


def _zero_shot(spec: ModelSpec, batch_size: int, accelerator: str | None, options: dict):
    from tessera.models.handlers.siglip import ZeroShotHandler  # JAX only when asked for
    kwargs = dict(scoring="softmax" if spec.family == "lit" else "sigmoid",
                  class_names=tuple(options.get("class_names") or ()),
                  template=options.get("prompt") or "", top_k=options.get("top_k") or 5,
                  embeddings=bool(options.get("embeddings")), batch_size=batch_size,
                  accelerator=accelerator, model_name=spec.name)
    if spec.tokenizer:
        return ZeroShotHandler(spec.path, spec.tokenizer, **kwargs)
    return ZeroShotHandler.from_path(spec.path, **kwargs)


def _owlvit(spec: ModelSpec, batch_size: int, accelerator: str | None, options: dict):
    from tessera.models.handlers.owlvit import OwlViTHandler  # JAX only when asked for
    kwargs = dict(queries=tuple(options.get("queries") or ()), template=options.get("prompt") or "",
                  min_score=0.1 if options.get("min_score") is None else options["min_score"],
                  max_boxes=options.get("max_boxes") or 100,
                  batch_size=batch_size, accelerator=accelerator, model_name=spec.name)
    if spec.tokenizer:
        return OwlViTHandler(spec.path, spec.tokenizer, **kwargs)
    return OwlViTHandler.from_path(spec.path, **kwargs)


def _gemini(spec: ModelSpec, batch_size: int, accelerator: str | None, options: dict):
    from tessera.models.gemini import credentials_from_env
    from tessera.models.handlers.gemini import GeminiLabelHandler
    del accelerator  # a hosted model: the workers only send requests
    return GeminiLabelHandler(spec.path, prompt=options.get("prompt") or "",
                              max_batch_size=batch_size, **credentials_from_env())


def _image_classifier(spec: ModelSpec, batch_size: int, accelerator: str | None,
                      options: dict):
    from tessera.models.handlers.image_classifier import ImageClassifierHandler
    # V-MoE's one inference knob; None keeps the family's default
    load_kwargs = {k: options[k] for k in ("capacity_ratio",) if options.get(k) is not None}
    return ImageClassifierHandler(get(spec.family).load_fn(), spec.path,
                                  class_names=tuple(options.get("class_names") or ()),
                                  top_k=options.get("top_k") or 5,
                                  embeddings=bool(options.get("embeddings")),
                                  batch_size=batch_size, model_name=spec.name,
                                  accelerator=accelerator, load_kwargs=load_kwargs)


def _savedmodel(spec: ModelSpec, batch_size: int, accelerator: str | None, options: dict):
    from tessera.models.handlers.savedmodel_classifier import SavedModelClassifierHandler
    return SavedModelClassifierHandler(spec.path, accelerator=accelerator,
                                       max_batch_size=batch_size,
                                       top_k=options.get("top_k") or 5)


_BIG_VISION_WEIGHTS = "tessera.models.paligemma.paths:weights_file"  # .npz + tokenizer, or HF dir

for _family in (
        Family("unet", "tessera.models.unet", ("buildings",), jax_handler, "MSGPACK"),
        Family("small_cnn", "tessera.models.small_cnn", ("cnn-zoo",), jax_handler,
               "ZOO/weights.npy#ROW"),
        Family("seq2seq", "tessera.models.seq2seq", ("mcd",), jax_handler, "MSGPACK"),
        Family("ocr", "tessera.models.ocr", ("label",), _ocr, takes_path=False),
        Family("paligemma", "tessera.models.paligemma", ("label",), _paligemma,
               "CKPT.npz|DIR[,TOKENIZER.model]", takes_tokenizer=True,
               weights=_BIG_VISION_WEIGHTS),
        Family("siglip", "tessera.models.siglip", ("label",), _zero_shot,
               "CKPT.npz|DIR[,TOKENIZER.model]", takes_tokenizer=True,
               weights=_BIG_VISION_WEIGHTS),
        Family("lit", "tessera.models.siglip", ("label",), _zero_shot,
               "CKPT.npz|DIR[,TOKENIZER.model]", takes_tokenizer=True,
               loader="tessera.models.siglip:load_lit", weights=_BIG_VISION_WEIGHTS),
        Family("gemini", "tessera.models.gemini", ("label",), _gemini, "MODEL",
               check="tessera.models.gemini:check_ready"),
        Family("savedmodel", "tessera.models.savedmodel_classifier", ("label",), _savedmodel,
               "DIR", loader="tessera.models.handlers.savedmodel_classifier:load",
               weights="tessera.models.savedmodel_classifier:weights_file"),
        Family("vit", "tessera.models.vit", ("label",), _image_classifier, "CKPT.npz|DIR",
               weights="tessera.models.vit:weights_file"),
        Family("mixer", "tessera.models.mixer", ("label",), _image_classifier, "CKPT.npz|DIR",
               weights="tessera.models.image_classifier:weights_file"),
        Family("vmoe", "tessera.models.vmoe", ("label",), _image_classifier,
               "PREFIX|PREFIX.index|CKPT.npz|DIR", check="tessera.models.vmoe:check_path",
               weights="tessera.models.vmoe:weights_file"),
        Family("owlvit", "tessera.models.owlvit", ("label",), _owlvit, "CKPT|DIR[,TOKENIZER]",
               takes_tokenizer=True, weights="tessera.models.owlvit:weights_file")):
    register(_family)
