"""The batch-labelling handlers share batch sizing, accelerator hints and counter names."""
import numpy as np
import pytest
from apache_beam.ml.inference.base import ModelHandler

from tessera.models.handlers.gemini import GeminiLabelHandler
from tessera.models.handlers.image_classifier import ImageClassifierHandler
from tessera.models.handlers.label_base import LabelHandlerMixin
from tessera.models.handlers.ocr import OcrModelHandler
from tessera.models.handlers.owlvit import OwlViTHandler
from tessera.models.handlers.paligemma import PaliGemmaModelHandler
from tessera.models.handlers.savedmodel_classifier import SavedModelClassifierHandler
from tessera.models.handlers.siglip import ZeroShotHandler
from tessera.schemas.labels import LabelRequest

# Counter names users' dashboards and the label pipeline's metrics read: they must not drift.
NAMESPACES = {
    GeminiLabelHandler: "label_gemini",
    ImageClassifierHandler: "tessera_image_classifier",
    OcrModelHandler: "label_ocr",
    OwlViTHandler: "tessera_owlvit",
    PaliGemmaModelHandler: "tessera_paligemma",
    SavedModelClassifierHandler: "label_savedmodel",
    ZeroShotHandler: "tessera_siglip",
}


class _Handler(LabelHandlerMixin, ModelHandler):
    def __init__(self, accelerator=None):
        super().__init__()
        self._accelerator = accelerator


def test_num_bytes_is_the_images_bytes_not_a_pickle():
    batch = [LabelRequest("a", np.zeros((4, 5, 3), np.uint8)), LabelRequest("b", np.zeros((2, 2, 3), np.uint16)),
             LabelRequest("c", None)]
    assert _Handler().get_num_bytes(batch) == 60 + 24


def test_resource_hints_name_the_accelerator_only_when_given():
    assert _Handler("type:nvidia-l4;count:1").get_resource_hints() == {"accelerator": "type:nvidia-l4;count:1"}
    assert _Handler().get_resource_hints() == {}


def test_namespace_falls_back_to_the_base_handler():
    assert _Handler().get_metrics_namespace() == ModelHandler().get_metrics_namespace()


@pytest.mark.parametrize("cls", list(NAMESPACES), ids=lambda c: c.__name__)
def test_every_label_handler_shares_the_mixin(cls):
    handler = object.__new__(cls)  # no model, no credentials: only the shared methods are called
    assert isinstance(handler, LabelHandlerMixin)
    assert handler.get_metrics_namespace() == NAMESPACES[cls]
    assert handler.get_num_bytes([LabelRequest("a", np.zeros((3, 3, 3), np.uint8))]) == 27
