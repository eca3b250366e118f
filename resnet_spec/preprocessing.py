"""What each variant's weights expect of an image: the normalisation named by
`ResNetSpec.preprocessing`, as plain numbers (parity.apps.preprocess carries them out in both
frameworks, and converted files record them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Per-channel statistics of the CIFAR-10 training images.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
# keras.applications' "caffe" mode subtracts these from 0-255 pixels (RGB order here), no scaling.
CAFFE_MEAN = (123.68, 116.779, 103.939)
HALF = (0.5, 0.5, 0.5)
# ImageNet evaluation resizes to crop / 0.875 (256 for 224) before the centre crop.
CROP_FRACTION = 0.875


@dataclass(frozen=True)
class Normalization:
    mean: tuple[float, float, float]  # on [0, 1] RGB pixels
    std: tuple[float, float, float]
    bgr: bool  # the network reads its channels as BGR
    crop_fraction: float  # of the resized image that the centre crop keeps (1: the whole image)
    dataset: str  # whose class names the variant's own classifier predicts

    def record(self) -> dict:
        """The numbers as plain JSON values."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


NORMALIZATIONS = {
    # torchvision's (Keras' "torch" mode)
    "imagenet": Normalization(IMAGENET_MEAN, IMAGENET_STD, False, CROP_FRACTION, "imagenet1k"),
    # keras.applications v1: RGB to BGR, the ImageNet mean subtracted on the 0-255 scale
    "caffe": Normalization(tuple(m / 255 for m in CAFFE_MEAN), (1 / 255,) * 3, True, CROP_FRACTION, "imagenet1k"),
    # keras.applications v2: scaled to [-1, 1]
    "tf": Normalization(HALF, HALF, False, CROP_FRACTION, "imagenet1k"),
    "cifar10": Normalization(CIFAR10_MEAN, CIFAR10_STD, False, 1.0, "cifar10"),
    # the CIFAR-10 notebook's transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    "half": Normalization(HALF, HALF, False, 1.0, "cifar10"),
}
