"""What a model expects as input: size, channels, colour order, normalisation, resize mode, layout.

The spec travels inside the bundle (bundle.json), so training, evaluation, export parity checks and
the station all read the same description and cannot drift apart.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import field_validator, model_validator

from inspection.validation import StrictModel


class ResizeMode(StrEnum):
    STRETCH = "stretch"  # resize to size x size, aspect ratio not kept
    LETTERBOX = "letterbox"  # fit inside, pad the rest with black
    CENTER_CROP = "center_crop"  # shortest side to size, then crop the centre


class ShrinkMode(StrEnum):
    """How a frame larger than the model's input is shrunk (enlarging is always bilinear)."""

    # cv2.INTER_AREA at any factor: each output pixel averages the area it covers. A factor that
    # is not a whole number (a 288 px crop to 128, 2.25) takes OpenCV's general path: 0.25 ms a
    # frame, more than half of preparing one. Bundles without the field were trained with this.
    AREA = "area"
    # Average k x k blocks, k the whole part of the factor (when it is 2 or more; the centred
    # multiple of k of the image, at most k-1 rows and columns trimmed), then bilinear for the
    # factor left, which is under 2: 0.05 ms for the same crop. The recipe's default since the
    # fifteenth session.
    BOX_THEN_LINEAR = "box_then_linear"


class ColourOrder(StrEnum):
    RGB = "rgb"
    BGR = "bgr"
    GRAY = "gray"


class InputLayout(StrEnum):
    # Our own exported models take uint8 NHWC and cast/normalise/transpose inside the graph:
    # the float work then runs inside the runtime instead of competing with it in numpy.
    NHWC_UINT8 = "nhwc_uint8"
    # Models imported from elsewhere (Ultralytics, timm) take normalised float32 NCHW.
    NCHW_FLOAT32 = "nchw_float32"


class InputSpec(StrictModel):
    size_px: int
    channels: int
    colour_order: ColourOrder
    mean: tuple[float, ...]  # per channel, in 0..1 units of the uint8 range
    std: tuple[float, ...]
    resize_mode: ResizeMode = ResizeMode.STRETCH
    layout: InputLayout = InputLayout.NHWC_UINT8
    # None: the whole frame. A share of the frame's short side: a square of that side centred on
    # the item (inspection.item_crop) is what gets resized; a larger item gets a larger square.
    item_crop_fraction: float | None = None
    shrink: ShrinkMode = ShrinkMode.AREA

    @field_validator("item_crop_fraction")
    @classmethod
    def _crop_in_range(cls, value: float | None) -> float | None:
        if value is not None and not 0.2 <= value <= 1.0:
            raise ValueError("item_crop_fraction must be between 0.2 and 1.0 (a share of the frame's short side), or null")
        return value

    @field_validator("size_px")
    @classmethod
    def _size_in_range(cls, value: int) -> int:
        if not 16 <= value <= 4096:
            raise ValueError("size_px must be between 16 and 4096")
        return value

    @field_validator("channels")
    @classmethod
    def _channels_known(cls, value: int) -> int:
        if value not in (1, 3):
            raise ValueError("channels must be 1 (grayscale) or 3 (colour)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "InputSpec":
        if (self.channels == 1) != (self.colour_order == ColourOrder.GRAY):
            raise ValueError("colour_order must be 'gray' exactly when channels is 1")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(f"mean and std need one value per channel ({self.channels})")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")
        return self


IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


def default_input_spec(size_px: int, channels: int, item_crop_fraction: float | None = None,
                       shrink: ShrinkMode = ShrinkMode.AREA) -> InputSpec:
    """The spec our training uses: ImageNet statistics (grey: their average), stretch resize."""
    if channels == 1:
        mean: tuple[float, ...] = (sum(IMAGENET_MEAN_RGB) / 3,)
        std: tuple[float, ...] = (sum(IMAGENET_STD_RGB) / 3,)
        order = ColourOrder.GRAY
    else:
        mean, std, order = IMAGENET_MEAN_RGB, IMAGENET_STD_RGB, ColourOrder.RGB
    return InputSpec(size_px=size_px, channels=channels, colour_order=order, mean=mean, std=std,
                     item_crop_fraction=item_crop_fraction, shrink=shrink)
