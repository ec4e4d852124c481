"""The project's ViT + simple feature pyramid as a detectron2 ``Backbone`` (ViTDet, arXiv 2203.16527).

``backbone.SimpleFeaturePyramid`` already carries detectron2's module names (``net.*``, ``simfp_2..5.*``), so
this class only adds what detectron2's meta-architectures ask a backbone for: ``output_shape()``,
``size_divisibility`` and ``padding_constraints``. Inside a ``GeneralizedRCNN`` the parameters are named
``backbone.net.*`` / ``backbone.simfp_*``, exactly as in detectron2's ViTDet, so a published ViTDet
``model_final`` loads key for key.
"""
from __future__ import annotations

from detectron2.modeling import Backbone

from backbone import SimpleFeaturePyramid


class ViTDetBackbone(SimpleFeaturePyramid, Backbone):
    """``SimpleFeaturePyramid(net=ViT(...), ...)`` with detectron2's ``Backbone`` interface.

    Arguments are ``backbone.SimpleFeaturePyramid``'s. ``SimpleFeaturePyramid`` comes first in the bases so
    that its ``forward`` overrides ``Backbone``'s abstract one.
    """

    # A plain class attribute in front of Backbone's read-only property, so that SimpleFeaturePyramid's
    # __init__ can store its size divisibility (the coarsest level's stride) in it.
    size_divisibility: int = 0

    @property
    def padding_constraints(self) -> dict[str, int]:
        """Pad every batch to a multiple of ``size_divisibility`` and, with LSJ, to a ``square_pad`` square.

        detectron2's own pyramid spells the first key ``size_divisiblity``, which ``ImageList`` never reads;
        here it is spelled as ``ImageList.from_tensors`` reads it.
        """
        return {"size_divisibility": self.size_divisibility, "square_size": self.square_pad}
