"""SCAN (Lake & Baroni 2018): its phrase-structure grammar, its interpretation, and derivations.

The grammar (Lake & Baroni 2018, Fig. 6):

    C -> S and S | S after S | S
    S -> V twice | V thrice | V
    V -> D[1] opposite D[2] | D[1] around D[2] | D | U
    D -> U left | U right | turn left | turn right
    U -> walk | look | run | jump

generates exactly 20,910 distinct commands. Every command has a single derivation, recorded here
as a nested list `[rule, child, ...]` of rule names: the rule-application tree that the CFQ paper
(Keysers et al. 2020) turns into atoms (the rules) and compounds (sub-trees) for MCD splits. A rule
name stands for the grammar rule and its interpretation rule together, since in SCAN each grammar
rule has exactly one interpretation rule.
"""
from __future__ import annotations

import itertools
from typing import Iterator

Derivation = list  # [rule_name, *child_derivations]

PRIMITIVES = ("walk", "look", "run", "jump")
DIRECTIONS = ("left", "right")
ACTION_OF = {"walk": "I_WALK", "look": "I_LOOK", "run": "I_RUN", "jump": "I_JUMP"}
TURN_OF = {"left": "I_TURN_LEFT", "right": "I_TURN_RIGHT"}

# All rule names, so users can check atom vocabularies.
RULES = (
    ["C_and", "C_after", "C_S", "S_twice", "S_thrice", "S_V", "V_opposite", "V_around", "V_D", "V_U"]
    + [f"D_U_{d}" for d in DIRECTIONS] + [f"D_turn_{d}" for d in DIRECTIONS]
    + [f"U_{p}" for p in PRIMITIVES]
)


def _u_phrases() -> Iterator[tuple[str, Derivation]]:
    for p in PRIMITIVES:
        yield p, [f"U_{p}"]


def _d_phrases() -> Iterator[tuple[str, Derivation]]:
    for d in DIRECTIONS:
        for text, tree in _u_phrases():
            yield f"{text} {d}", [f"D_U_{d}", tree]
        yield f"turn {d}", [f"D_turn_{d}"]


def _v_phrases() -> Iterator[tuple[str, Derivation]]:
    for text, tree in _d_phrases():
        verb, direction = text.split(" ")
        yield f"{verb} opposite {direction}", ["V_opposite", tree]
        yield f"{verb} around {direction}", ["V_around", tree]
        yield text, ["V_D", tree]
    for text, tree in _u_phrases():
        yield text, ["V_U", tree]


def _s_phrases() -> list[tuple[str, Derivation]]:
    out = []
    for text, tree in _v_phrases():
        out.append((f"{text} twice", ["S_twice", tree]))
        out.append((f"{text} thrice", ["S_thrice", tree]))
        out.append((text, ["S_V", tree]))
    return out


def generate() -> Iterator[tuple[str, Derivation]]:
    """Yields every SCAN command with its derivation, in a fixed (grammar) order: 20,910 of them."""
    s_phrases = _s_phrases()
    for text, tree in s_phrases:
        yield text, ["C_S", tree]
    for (t1, d1), (t2, d2) in itertools.product(s_phrases, s_phrases):
        yield f"{t1} and {t2}", ["C_and", d1, d2]
        yield f"{t1} after {t2}", ["C_after", d1, d2]


def interpret(tree: Derivation) -> list[str]:
    """The action sequence a derivation means (the interpretation rules of Lake & Baroni, Fig. 6)."""
    rule, children = tree[0], tree[1:]
    if rule.startswith("U_"):
        return [ACTION_OF[rule[2:]]]
    if rule.startswith("D_turn_"):
        return [TURN_OF[rule[len("D_turn_"):]]]
    if rule.startswith("D_U_"):
        return [TURN_OF[rule[len("D_U_"):]]] + interpret(children[0])
    if rule == "V_opposite":
        turn, action = _turn_and_action(children[0])
        return [turn, turn] + action
    if rule == "V_around":
        turn, action = _turn_and_action(children[0])
        return ([turn] + action) * 4
    if rule in ("V_D", "V_U", "S_V", "C_S"):
        return interpret(children[0])
    if rule == "S_twice":
        return interpret(children[0]) * 2
    if rule == "S_thrice":
        return interpret(children[0]) * 3
    if rule == "C_and":
        return interpret(children[0]) + interpret(children[1])
    if rule == "C_after":
        return interpret(children[1]) + interpret(children[0])
    raise ValueError(f"unknown SCAN rule {rule!r}")


def _turn_and_action(d_tree: Derivation) -> tuple[str, list[str]]:
    """Splits a D derivation into its turn and the action done after it (none for `turn x`)."""
    rule = d_tree[0]
    if rule.startswith("D_turn_"):
        return TURN_OF[rule[len("D_turn_"):]], []
    return TURN_OF[rule[len("D_U_"):]], interpret(d_tree[1])


def command_of(tree: Derivation) -> str:
    """The command text a derivation yields (the inverse of generation; used to validate inputs)."""
    rule, children = tree[0], tree[1:]
    if rule.startswith("U_"):
        return rule[2:]
    if rule.startswith("D_turn_"):
        return f"turn {rule[len('D_turn_'):]}"
    if rule.startswith("D_U_"):
        return f"{command_of(children[0])} {rule[len('D_U_'):]}"
    if rule in ("V_opposite", "V_around"):
        verb, direction = command_of(children[0]).split(" ")
        return f"{verb} {rule[2:]} {direction}"
    if rule in ("V_D", "V_U", "S_V", "C_S"):
        return command_of(children[0])
    if rule in ("S_twice", "S_thrice"):
        return f"{command_of(children[0])} {rule[2:]}"
    if rule in ("C_and", "C_after"):
        return f"{command_of(children[0])} {rule[2:]} {command_of(children[1])}"
    raise ValueError(f"unknown SCAN rule {rule!r}")


def format_line(command: str, actions: list[str]) -> str:
    """One line of the official SCAN files: `IN: <command> OUT: <actions>`."""
    return f"IN: {command} OUT: {' '.join(actions)}"


def examples() -> Iterator[dict]:
    """Every SCAN example as `{input, output, derivation}`, in generation order."""
    for command, tree in generate():
        yield {"input": command, "output": " ".join(interpret(tree)), "derivation": tree}
