"""V-MoE's sparse MoE layer as pure JAX: top-k routing with a fixed expert capacity, Batch
Prioritized Routing, and the experts' MLPs over the dispatched tokens.

Per group of S tokens (one image by default, see `configs.py`):

1. gates = softmax(x @ Router/dense/kernel) over the E experts (no noise at inference);
2. each token picks its k experts with the largest gates; all first choices claim expert slots
   before any second choice, and within one round tokens go in position order, or, with BPR, in
   order of their largest gate;
3. an expert takes at most `capacity` tokens; a choice past that is dropped;
4. y = sum over a token's kept choices of gate * expert_MLP(x). A token with no kept choice gets
   0, so the block passes it through its residual only.

Dispatch and combine are one-hot einsums over [S, E, C] as in the authors' EinsumDispatcher, so
the sums run in the same order (it matters for float32 parity, not for meaning).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from tessera.models.paligemma.siglip import mlp


def expert_capacity(group_size: int, num_experts: int, k: int, capacity_ratio: float,
                    rounding: str = "round", multiple_of: int = 0) -> int:
    """Slots per expert and group: k * C * S / E rounded (the paper), or as the authors'
    `compute_capacity` does with ("ceil", 4): up, then up to a multiple of 4.

    Raises:
      ValueError: the ratio leaves an expert no slot at all.
    """
    target = group_size * k * capacity_ratio / num_experts
    capacity = math.ceil(target) if rounding == "ceil" else int(round(target))
    if capacity < 1:
        raise ValueError(f"capacity ratio {capacity_ratio} gives experts no slot for "
                         f"{group_size} tokens, k={k}, {num_experts} experts")
    if multiple_of:
        capacity += -capacity % multiple_of
    return capacity


def route(gates, k: int, capacity: int, batch_priority: bool):
    """Top-k routing of one group.

    Args:
      gates: [S, E] routing weights (softmax over experts).
      k: experts per token.
      capacity: slots per expert.
      batch_priority: order tokens by their largest gate (BPR) instead of by position.

    Returns:
      (dispatch [S, E, C] bool: token s sits in slot c of expert e;
       combine [S, E, C]: its gate there, 0 elsewhere).
    """
    num_tokens, num_experts = gates.shape
    top_gates, top_experts = jax.lax.top_k(gates, k)  # [S, K]
    if batch_priority:  # stable: equal gates keep position order
        order = jnp.argsort(-top_gates[:, 0], stable=True)
    else:
        order = jnp.arange(num_tokens)
    # Rounds of choices, k-major, so every first choice is served before any second one.
    choices = jax.nn.one_hot(top_experts[order].T.reshape(-1), num_experts, dtype=jnp.int32)
    slot = jnp.cumsum(choices, axis=0) * choices - 1  # [K*S, E]: place in the expert's queue
    slot = slot.reshape(k, num_tokens, num_experts).max(axis=0)  # one choice per (token, expert)
    slot = slot[jnp.argsort(order)]  # back to token order
    dispatch = jax.nn.one_hot(slot, capacity, dtype=jnp.bool_)  # -1 and >= capacity: dropped
    return dispatch, gates[:, :, None] * dispatch


def group_gates(p_router, x):
    """[G, S, D] tokens -> [G, S, E] softmax routing weights (the router Dense has no bias)."""
    return jax.nn.softmax(jnp.einsum("GSD,DE->GSE", x, p_router["dense"]["kernel"]), axis=-1)


def moe_mlp(p, x, *, k: int, capacity: int, batch_priority: bool):
    """The `Moe` block: `p` holds `Router/dense/kernel` [D, E] and `Mlp/Dense_{0,1}` with a
    leading expert axis; x [G, S, D] (groups routed independently) -> [G, S, D]."""
    dispatch, combine = jax.vmap(lambda g: route(g, k, capacity, batch_priority))(
        group_gates(p["Router"], x))
    inputs = jnp.einsum("GSEC,GSD->EGCD", dispatch.astype(x.dtype), x)
    num_experts, groups, _, width = inputs.shape
    outputs = jax.vmap(mlp)(p["Mlp"], inputs.reshape(num_experts, groups * capacity, width))
    outputs = outputs.reshape(num_experts, groups, capacity, -1)
    return jnp.einsum("GSEC,EGCD->GSD", combine, outputs)


def processed_tokens(p_router, x, *, k: int, capacity: int, batch_priority: bool):
    """[G, S] how many experts process each token (0..k): what the capacity ratio buys."""
    dispatch, _ = jax.vmap(lambda g: route(g, k, capacity, batch_priority))(
        group_gates(p_router, x))
    return dispatch.sum(axis=(2, 3))
