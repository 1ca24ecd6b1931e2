#!/usr/bin/python3
"""PyTorch reference for the Mask R-CNN heads (He, Gkioxari, Dollar & Girshick, "Mask R-CNN",
ICCV 2017), with the region proposals given as an input, written from the paper:

    backbone: conv3x3(3->16, stride 2) relu conv3x3(16->32, stride 2) relu   -> stride-4 map
    box branch: RoIAlign 7x7 -> flatten -> fc6 (1568->128) relu -> fc7 (128->128) relu
                -> cls_score (128->4 class logits), bbox_pred (128->16 = 4 classes x 4 deltas)
    mask branch: RoIAlign 14x14 -> 4 x (conv3x3(32->32) relu) -> ConvTranspose 2x2 stride 2
                 relu -> conv1x1 (32->4) -> sigmoid: one 28x28 mask per class

RoIAlign is torchvision.ops.roi_align(feat, boxes, output_size, spatial_scale=1/4,
sampling_ratio=2, aligned=True) -- bilinear sampling at 2x2 points per bin, averaged, with the
half-pixel offset of the paper ("aligned").  boxes f32[K, 5] rows are (batch_index, x1, y1, x2,
y2) in image coordinates; K = 6 boxes on one 64x64 image, including a box partly outside the
image and a tiny (sub-pixel on the feature map) box.  4 classes.  He-normal weights,
N(0, 0.1^2) biases (see make_model); image ~ U(0, 1).

Entries (sharing all parameters):
    detect(image, boxes) -> (class_logits [K, 4], box_deltas [K, 16])
    masks(image, boxes)  -> (masks [K, 4, 28, 28])

    /usr/bin/python3 tests/golden/mask_rcnn/reference.py
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.ops import roi_align

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import nnc_ref  # noqa: E402

NUM_CLASSES = 4
SCALE = 0.25  # feature stride 4


class BoxHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc6 = nn.Linear(32 * 7 * 7, 128)
        self.fc7 = nn.Linear(128, 128)

    def forward(self, x):
        return F.relu(self.fc7(F.relu(self.fc6(torch.flatten(x, start_dim=1)))))


class BoxPredictor(nn.Module):
    def __init__(self):
        super().__init__()
        self.cls_score = nn.Linear(128, NUM_CLASSES)
        self.bbox_pred = nn.Linear(128, NUM_CLASSES * 4)

    def forward(self, x):
        return self.cls_score(x), self.bbox_pred(x)


class MaskPredictor(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv5_mask = nn.ConvTranspose2d(32, 32, 2, stride=2)
        self.mask_fcn_logits = nn.Conv2d(32, NUM_CLASSES, 1)

    def forward(self, x):
        return self.mask_fcn_logits(F.relu(self.conv5_mask(x)))


class MaskRCNNHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                                      nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())
        self.box_head = BoxHead()
        self.box_predictor = BoxPredictor()
        self.mask_head = nn.Sequential(
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU())
        self.mask_predictor = MaskPredictor()

    def detect(self, image, boxes):
        feat = self.backbone(image)
        r = roi_align(feat, boxes, output_size=7, spatial_scale=SCALE, sampling_ratio=2,
                      aligned=True)
        return self.box_predictor(self.box_head(r))

    def masks(self, image, boxes):
        feat = self.backbone(image)
        r = roi_align(feat, boxes, output_size=14, spatial_scale=SCALE, sampling_ratio=2,
                      aligned=True)
        return torch.sigmoid(self.mask_predictor(self.mask_head(r)))


def make_model(seed=0):
    """He-normal weights N(0, 2/fan_in) and biases N(0, 0.1^2), so that the signal keeps its
    scale through the layers and the outputs span a useful range (PyTorch's default
    initialisation shrinks it: masks would all be about 0.5)."""
    torch.manual_seed(seed)
    model = MaskRCNNHeads()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                if isinstance(m, nn.ConvTranspose2d):  # inputs reaching one output pixel
                    fan_in = m.in_channels * (m.kernel_size[0] // m.stride[0]) \
                        * (m.kernel_size[1] // m.stride[1])
                else:
                    fan_in = m.weight[0].numel()
                nn.init.normal_(m.weight, std=(2.0 / fan_in) ** 0.5)
                nn.init.normal_(m.bias, std=0.1)
    return model.float().eval()


def make_inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, 64, 64, generator=g)
    boxes = torch.tensor([
        [0, 4.0, 6.0, 40.0, 30.0],      # ordinary
        [0, 20.5, 10.25, 60.0, 62.0],   # tall, fractional corners
        [0, 0.0, 0.0, 64.0, 64.0],      # whole image
        [0, 44.0, -10.0, 80.0, 20.0],   # partly outside the image (right and top)
        [0, 30.2, 30.7, 31.4, 31.5],    # tiny: about a third of a feature-map pixel
        [0, 8.0, 40.0, 24.0, 44.0],     # wide and flat
    ], dtype=torch.float32)
    return image.float().contiguous(), boxes


def main():
    model = make_model()
    image, boxes = make_inputs()
    with torch.no_grad():
        cls, deltas = model.detect(image, boxes)
        masks = model.masks(image, boxes)
        m64 = model.double()
        cls64, deltas64 = m64.detect(image.double(), boxes.double())
        masks64 = m64.masks(image.double(), boxes.double())
        model.float()
    err = max((a.double() - b).abs().max().item()
              for a, b in ((cls, cls64), (deltas, deltas64), (masks, masks64)))
    assert masks.shape == (6, NUM_CLASSES, 28, 28)
    nnc_ref.write_golden(HERE, model, [
        ("detect", {"image": image, "boxes": boxes},
         {"class_logits": cls, "box_deltas": deltas}),
        ("masks", {"image": image, "boxes": boxes}, {"masks": masks}),
    ])
    print(f"mask_rcnn: wrote golden to {HERE} (|class_logits| <= {cls.abs().max():.3g}, "
          f"masks in [{masks.min():.3g}, {masks.max():.3g}], float32 vs float64 {err:.2g})")


if __name__ == "__main__":
    main()
