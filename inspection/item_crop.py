"""Find the item in a line-camera frame and cut a fixed-size square around it.

Vision stations locate the part before they inspect it. Centring the item removes its position
on the belt from what the classifier has to learn, and the model sees the tablet, not mostly
belt, at the same input size. The square's side is a fixed share of the frame's short side, so
the item's size in pixels (how a broken tablet differs from a whole one) is kept. An item larger
than that square gets a larger one (its extent plus a margin, at most the short side): a crop
never cuts the item's rim, where chips are.

Pure and deterministic: the same frame always gives the same crop, in training, evaluation,
export checks and at the station.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# The item is found on a coarse grid (about this many samples along the short side): locating
# costs about a tenth of a millisecond, whatever the camera resolution.
LOCATE_GRID_PX = 64
_BORDER_PX = 2  # width of the frame's border ring, in grid samples, taken as background
ITEM_MARGIN = 1.15  # crop side over the item's longer extent, when the item outgrows the set square


@dataclass(frozen=True, slots=True)
class ItemLocation:
    centre_x_px: float
    centre_y_px: float
    extent_px: float  # the longer side of the item's bounding box (0: nothing found)


def locate_item(image: np.ndarray) -> ItemLocation:
    """Centre and extent in pixels of the largest region that differs from the frame's border colour.

    The border ring's median colour is the background (belt or blister foil); Otsu's threshold on
    the distance from it separates the item; the largest connected region is the item (a broken
    tablet's small fragments do not move the centre). A frame with nothing in it gives its centre.
    """
    height, width = image.shape[:2]
    step = max(1, min(height, width) // LOCATE_GRID_PX)
    # Nearest-neighbour samples, then a blur that stands in for the averaging a resize would do.
    grid = cv2.blur(cv2.resize(image, (max(1, width // step), max(1, height // step)), interpolation=cv2.INTER_NEAREST), (3, 3))
    channels = cv2.split(grid)
    ring = np.concatenate([grid[:_BORDER_PX].reshape(-1, len(channels)), grid[-_BORDER_PX:].reshape(-1, len(channels)),
                           grid[:, :_BORDER_PX].reshape(-1, len(channels)), grid[:, -_BORDER_PX:].reshape(-1, len(channels))])
    background = _median_per_column(ring)
    distance = cv2.absdiff(channels[0], float(background[0]))
    for channel, level in zip(channels[1:], background[1:]):
        distance = cv2.max(distance, cv2.absdiff(channel, float(level)))
    _, mask = cv2.threshold(distance, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    count, _, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return ItemLocation((width - 1) / 2.0, (height - 1) / 2.0, 0.0)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    grid_x, grid_y = centroids[largest]
    extent = max(stats[largest, cv2.CC_STAT_WIDTH], stats[largest, cv2.CC_STAT_HEIGHT]) * step
    return ItemLocation(float(grid_x * step + (step - 1) / 2.0), float(grid_y * step + (step - 1) / 2.0), float(extent))


def _median_per_column(values: np.ndarray) -> np.ndarray:
    """np.median(values, axis=0), exactly: each column's middle value, or the mean of its two
    middles. Partitioning contiguous rows directly takes half the time of np.median, whose
    Python-level overhead was a quarter of locating the item on every frame."""
    rows, middle = np.ascontiguousarray(values.T), len(values) // 2
    if len(values) % 2:
        return np.partition(rows, middle, axis=1)[:, middle].astype(np.float64)
    halves = np.partition(rows, (middle - 1, middle), axis=1)
    return (halves[:, middle - 1].astype(np.float64) + halves[:, middle]) / 2.0


def item_crop_box(image: np.ndarray, side_fraction: float) -> tuple[int, int, int]:
    """(left, top, side) in pixels of the square `crop_around_item` cuts: centred on the item and
    kept inside the frame (an item at the edge is off-centre in its crop). Its side is
    `side_fraction` x the frame's short side, or the item's extent plus a margin where that is
    larger, and never more than the short side."""
    height, width = image.shape[:2]
    item = locate_item(image)
    short = min(height, width)
    side = max(1, min(short, max(round(side_fraction * short), round(ITEM_MARGIN * item.extent_px))))
    left = int(round(min(max(item.centre_x_px - side / 2.0, 0.0), width - side)))
    top = int(round(min(max(item.centre_y_px - side / 2.0, 0.0), height - side)))
    return left, top, side


def crop_around_item(image: np.ndarray, side_fraction: float) -> np.ndarray:
    """The square of `item_crop_box`, as a view of the frame."""
    left, top, side = item_crop_box(image, side_fraction)
    return image[top : top + side, left : left + side]
