"""timm and transformers as references for the parity scripts: importing timm, a perturbed random
transformers model, copying flax arrays into timm modules by name, and the pass/fail figure.

  pip install -e '.[parity]'   # torch, transformers, timm (timm pulls torchvision)
"""
from __future__ import annotations

import sys

import numpy as np

TOLERANCE = 1e-4  # max |diff| / max |logit|, float32


def import_timm():
    """`import timm`; on a CPU-only torch build (`torch==X+cpu`) PyPI's torchvision cannot load
    its compiled ops, and only its fake-op registrations fail. timm needs none of those ops (only
    torchvision's Python classes), so the import is retried with those registrations skipped."""
    import torch
    try:
        import timm
        return timm
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
    for name in [m for m in sys.modules if m.split(".")[0] in ("torchvision", "timm")]:
        del sys.modules[name]
    register_fake = torch.library.register_fake
    torch.library.register_fake = lambda op, *a, **k: (
        (lambda fn: fn) if str(op).startswith("torchvision::") else register_fake(op, *a, **k))
    try:
        import timm
    finally:
        torch.library.register_fake = register_fake
    print("note: torchvision's compiled ops do not load with this torch build; timm imported "
          "without them (it does not use them)")
    return timm


def perturbed_hf_model(model_class, config, seed: int, scale: float = 0.05):
    """A transformers `model_class` built from `config` with eager attention (the plain reference
    maths) in eval mode, every weight moved by `scale` x N(0, 1) under `seed`: no exact zero bias
    or unit LayerNorm is left to hide a transposed kernel. Call `import_timm()` before importing
    `model_class` from transformers."""
    import torch
    torch.manual_seed(seed)
    model = model_class._from_config(config, attn_implementation="eager").eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


def conv(kernel: np.ndarray):
    """flax HWIO conv kernel -> torch OIHW weight."""
    import torch
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))


def linear(kernel: np.ndarray):
    """flax Dense kernel [..., in, out] (inputs flattened) -> torch Linear weight [out, in]."""
    import torch
    return torch.from_numpy(np.ascontiguousarray(kernel.reshape(-1, kernel.shape[-1]).T))


def tensor(array: np.ndarray):
    import torch
    return torch.from_numpy(np.ascontiguousarray(array))


def load_exact(module, state: dict) -> None:
    """Every parameter and buffer of `module` from `state`, nothing missing or left over."""
    expected = set(module.state_dict())
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or extra:
        raise KeyError(f"by-name copy: missing {missing[:5]}, unexpected {extra[:5]}")
    module.load_state_dict(state, strict=True)


def compare(name: str, ours: np.ndarray, reference: np.ndarray) -> bool:
    """Prints max |diff|, max |logit| and their ratio; True when the ratio < TOLERANCE."""
    diff = float(np.abs(ours - reference).max())
    scale = float(np.abs(reference).max())
    ratio = diff / scale
    ok = ratio < TOLERANCE
    print(f"  {name:72s} max|diff| {diff:.2e}  max|logit| {scale:7.3f}  ratio {ratio:.2e}  "
          f"{'ok' if ok else 'FAIL'}")
    return ok
