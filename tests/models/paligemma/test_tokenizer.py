"""PaliGemma tokenizer conventions and `<loc>`/`<seg>` output parsing."""
import pickle

import pytest

from tessera.models.paligemma import postprocess
from tessera.models.paligemma.postprocess import loc_to_pixels, parse_objects
from tests.fixtures.paligemma import train_tiny_tokenizer
from tessera.models.paligemma.tokenizer import PaliGemmaTokenizer, loc_token, seg_token
from tessera.schemas.labels import Box


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tokenizer.model"
    return PaliGemmaTokenizer.from_file(train_tiny_tokenizer(str(path)))


def test_special_ids_follow_gemma(tok):
    assert (tok.pad_id, tok.eos_id, tok.bos_id) == (0, 1, 2)
    assert loc_token(7) == "<loc0007>" and seg_token(7) == "<seg007>"
    assert set(tok.loc_ids) == {0, 1, 10, 100, 256, 512, 768, 1000, 1023}


def test_prefix_is_bos_prompt_newline(tok):
    ids = tok.encode_prefix("detect cat ; dog")
    assert ids[0] == tok.bos_id
    assert ids[-1] == tok.sp.piece_to_id("\n")
    assert tok.sp.decode(ids[1:-1]) == "detect cat ; dog"
    assert tok.encode_prefix("caption en\n") == tok.encode_prefix("caption en")


@pytest.mark.parametrize("text", [
    "a cat sits on the mat",
    "<loc0256><loc0100><loc0768><loc1000> cat ; <loc0000><loc0010><loc0512><loc1023> dog",
    "<loc0256><loc0100><loc0768><loc1000><seg000><seg007><seg127> cat",
    "street sign reads stop\ntwo dogs",
])
def test_round_trip(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text


def test_loc_and_seg_are_single_pieces(tok):
    ids = tok.encode("<loc0256><seg127>")
    assert [tok.sp.id_to_piece(i) for i in ids] == ["<loc0256>", "<seg127>"]


def test_decode_stops_at_eos(tok):
    ids = tok.encode("a cat") + [tok.eos_id] + tok.encode("dog") + [tok.pad_id] * 3
    assert tok.decode(ids) == "a cat"


def test_tokenizer_pickles(tok):
    again = pickle.loads(pickle.dumps(tok))
    assert again.encode_prefix("ocr") == tok.encode_prefix("ocr")


def test_loc_bins_to_pixels():
    # y uses the height, x the width; bin / 1024 of the original image size.
    assert loc_to_pixels((0, 0, 1023, 1023), 512, 1024) == (0.0, 0.0, 511.5, 1023.0)
    assert loc_to_pixels((256, 512, 768, 1000), 400, 300) == (100.0, 150.0, 300.0, 292.96875)


def test_detection_output_parses_to_pixel_boxes():
    text = "<loc0256><loc0100><loc0768><loc1000> cat ; <loc0000><loc0010><loc0512><loc1023> dog"
    objects = parse_objects(text, height=480, width=640)
    assert [o.box for o in objects] == [
        Box("cat", 120.0, 62.5, 360.0, 625.0),
        Box("dog", 0.0, 6.25, 240.0, 639.375),
    ]
    assert all(o.seg_tokens == () for o in objects)


def test_multiword_labels_and_trailing_separator():
    text = "<loc0000><loc0000><loc0512><loc0512> traffic light ; "
    (obj,) = parse_objects(text, height=1024, width=2048)
    assert obj.box == Box("traffic light", 0.0, 0.0, 512.0, 1024.0)


def test_segmentation_keeps_seg_tokens():
    text = "<loc0256><loc0100><loc0768><loc1000><seg000><seg007><seg127> cat"
    (obj,) = parse_objects(text, height=1024, width=1024)
    assert obj.box == Box("cat", 256.0, 100.0, 768.0, 1000.0)
    assert obj.seg_tokens == (0, 7, 127)


def test_text_without_boxes_and_incomplete_groups():
    assert parse_objects("a cat sits on the mat", 10, 10) == []
    assert parse_objects("<loc0001><loc0002><loc0003> cat", 10, 10) == []


def test_box_scores_follow_loc_groups(tok):
    import math
    text = "<loc0256><loc0100><loc0768><loc1000> cat ; <loc0000><loc0010><loc0512><loc1023> dog"
    ids = tok.encode(text) + [tok.eos_id]
    logps = [-0.1 * (i + 1) for i in range(len(ids))]
    loc_ids = set(tok.loc_ids.values())
    scores = postprocess.box_scores(ids, logps, loc_ids, tok.eos_id)
    loc_pos = [i for i, t in enumerate(ids) if t in loc_ids]
    want = [math.exp(sum(logps[i] for i in loc_pos[:4]) / 4),
            math.exp(sum(logps[i] for i in loc_pos[4:]) / 4)]
    assert scores == pytest.approx(want)
    objects = parse_objects(tok.decode(ids), 100, 100, scores)
    assert [o.box.score for o in objects] == pytest.approx(want)


def test_task_of_prompt():
    assert [postprocess.task_of(p) for p in ("caption en", "ocr", "answer en what?",
                                             "detect cat ; dog", "segment cat", "")] == [
        "caption", "ocr", "answer", "detect", "segment", ""]
