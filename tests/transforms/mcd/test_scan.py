"""SCAN grammar: the command count and the interpretation rules of Lake & Baroni (2018)."""
import pytest

from tessera.transforms.mcd import scan as mcd_scan


@pytest.fixture(scope="module")
def scan():
    return {ex["input"]: ex for ex in mcd_scan.examples()}


def test_exactly_20910_distinct_commands(scan):
    commands = [c for c, _ in mcd_scan.generate()]
    assert len(commands) == 20910
    assert len(set(commands)) == 20910
    assert len(scan) == 20910


@pytest.mark.parametrize("command, actions", [
    ("jump", "I_JUMP"),
    ("turn left", "I_TURN_LEFT"),
    ("walk left", "I_TURN_LEFT I_WALK"),
    ("run twice", "I_RUN I_RUN"),
    ("look thrice", "I_LOOK I_LOOK I_LOOK"),
    ("jump opposite left", "I_TURN_LEFT I_TURN_LEFT I_JUMP"),
    ("turn opposite right", "I_TURN_RIGHT I_TURN_RIGHT"),
    ("turn around left", "I_TURN_LEFT I_TURN_LEFT I_TURN_LEFT I_TURN_LEFT"),
    ("jump around left twice", " ".join(["I_TURN_LEFT I_JUMP"] * 8)),
    ("walk opposite right after run", "I_RUN I_TURN_RIGHT I_TURN_RIGHT I_WALK"),
    ("walk and look left", "I_WALK I_TURN_LEFT I_LOOK"),
    ("run right twice after jump around right",
     " ".join(["I_TURN_RIGHT I_JUMP"] * 4 + ["I_TURN_RIGHT I_RUN"] * 2)),
])
def test_interpretation(scan, command, actions):
    assert scan[command]["output"] == actions


def test_derivations_yield_their_commands_and_longest_output(scan):
    for command, ex in scan.items():
        assert mcd_scan.command_of(ex["derivation"]) == command
    assert max(len(ex["output"].split()) for ex in scan.values()) == 48  # as in the released data


def test_derivation_shape_and_line_format(scan):
    ex = scan["walk opposite right after run"]
    assert ex["derivation"] == ["C_after", ["S_V", ["V_opposite", ["D_U_right", ["U_walk"]]]],
                                ["S_V", ["V_U", ["U_run"]]]]
    line = mcd_scan.format_line("walk twice", ["I_WALK", "I_WALK"])
    assert line == "IN: walk twice OUT: I_WALK I_WALK"


def test_unknown_rule_is_rejected():
    with pytest.raises(ValueError, match="unknown SCAN rule"):
        mcd_scan.interpret(["V_sideways", ["U_walk"]])
