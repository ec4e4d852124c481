"""The project's ViT + simple feature pyramid as a detectron2 ``Backbone`` (ViTDet, arXiv 2203.16527).

``backbone.SimpleFeaturePyramid`` already carries detectron2's module names (``net.*``, ``simfp_2..5.*``), so
this class only adds what detectron2's meta-architectures ask a backbone for: ``output_shape()``,
``size_divisibility`` and ``padding_constraints``, and pads its input to the ``square_pad`` square itself.
Inside a ``GeneralizedRCNN`` the parameters are named ``backbone.net.*`` / ``backbone.simfp_*``, exactly as in
detectron2's ViTDet, so a published ViTDet ``model_final`` loads key for key.
"""
from __future__ import annotations

from . import frameworks  # noqa: F401, I001  (first: detectron2 without its import-time notices)

import torch
import torch.nn.functional as F
from detectron2.modeling import Backbone

from backbone import SimpleFeaturePyramid

from .data import DetectionInputError


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
        """Pad every batch to a multiple of ``size_divisibility``; ``forward`` pads it on to the square.

        detectron2's ViTDet asks ``ImageList.from_tensors`` for the square (``square_size``), which *crops* an
        image larger than the square without a word (negative padding); here the square padding is done in
        ``forward``, which refuses such an image. detectron2's own pyramid spells the first key
        ``size_divisiblity``, which ``ImageList`` never reads; here it is spelled as ``ImageList`` reads it.
        """
        return {"size_divisibility": self.size_divisibility}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Zero-pad the (normalised) batch to ``square_pad`` x ``square_pad`` at the bottom and right, as
        ``ImageList`` pads, then the pyramid; an input larger than the square is an error naming both sizes."""
        if self.square_pad:
            height, width = x.shape[-2:]
            if height > self.square_pad or width > self.square_pad:
                raise DetectionInputError(
                    f"an input of {height}x{width} px (after the resize of the config and padding to a multiple "
                    f"of {self.size_divisibility}) is larger than the backbone's square pad of "
                    f"{self.square_pad}x{self.square_pad} (model.backbone.square_pad / MODEL.VIT.SQUARE_PAD) and "
                    "would be cropped: resize to at most the square (the test resize's max_size / "
                    "INPUT.MAX_SIZE_TEST) or enlarge the square")
            x = F.pad(x, (0, self.square_pad - width, 0, self.square_pad - height))
        return super().forward(x)
