"""The OCR handler: real PP-OCR inference (offline, weights from the wheel) on rendered lines."""
import numpy as np
import pytest

from tests.fixtures.text_lines import cer, edit_distance, find_fonts, normalize, render_line
from tessera.models import ocr
from tessera.models.handlers.ocr import OcrModelHandler
from tessera.schemas.labels import LabelRequest


@pytest.fixture(scope="module")
def model():
    return ocr.load()


def test_edit_distance_and_cer():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "abc") == 0
    assert cer(["ab cd"], ["ab  cd "]) == 0.0  # whitespace runs collapse
    assert cer(["abcd"], ["abxd"]) == 0.25


def test_recognizes_rendered_line_with_box(model):
    fonts = find_fonts()
    assert fonts, "matplotlib ships DejaVu fonts"
    text = "Invoice 4471 total 93.50"
    image = render_line(text, fonts[0], 28, noise_sigma=6.0, seed_index=1)
    handler = OcrModelHandler()
    [result] = handler.run_inference([LabelRequest("k", image, prompt="ocr")], model)
    assert result.error is None and result.model == ocr.MODEL_NAME and result.prompt == "ocr"
    assert edit_distance(normalize(result.text), text) <= 1, result.text
    # Boxes are in the original pixel frame (the engine ran on an upscaled copy).
    height, width = image.shape[:2]
    dark_cols = np.where(image[:, :, 0].min(axis=0) < 100)[0]
    box = result.boxes[0]
    assert 0 <= box.x_min <= dark_cols[0] + 2 and dark_cols[-1] - 2 <= box.x_max <= width + 1
    assert 0 <= box.y_min < box.y_max <= height + 1 and 0.5 < box.score <= 1.0


def test_blank_image_gives_empty_text_not_error(model):
    handler = OcrModelHandler()
    [result] = handler.run_inference([LabelRequest("blank", np.full((32, 64, 3), 255, np.uint8))],
                                     model)
    assert result.error is None and result.text == "" and result.boxes == ()


def test_lines_to_result_orders_and_boxes():
    lines = [([[10, 5], [50, 5], [50, 20], [10, 20]], "top", 0.9),
             ([[12, 30], [40, 31], [40, 45], [12, 44]], "bottom", 0.8)]
    result = ocr.lines_to_result("k", "", lines)
    assert result.text == "top\nbottom"
    assert result.boxes[1].y_min == 30 and result.boxes[1].y_max == 45
    assert result.boxes[1].x_min == 12 and result.boxes[1].x_max == 40
    assert result.to_row()["boxes"][0]["label"] == "top"
