"""Does the line deliver the frames the model was trained on?

A model learns an item at the resolution its training camera gave it. The item crop and resize
give the model the same input size from any frame, but not the same detail: the synthetic line at
640x480 shrinks the item 3x and shows it sharper and less noisy than 224x224 training frames do,
and a bundle trained on the latter falsely rejected 59% of good items there against 20% on 224x224
frames of the same product (README, "Train on the line's camera"). The station cannot correct
that; it can say so.
"""

from __future__ import annotations


def frame_size_warning(frame_wh: tuple[int, int] | None, train_frame_sizes: dict[str, int] | None,
                       bundle_path: str) -> str | None:
    """One line when the line's frame size is none of the training frames' sizes, else None.

    None too when either is unknown: a bundle imported from elsewhere does not record its data."""
    if frame_wh is None or not train_frame_sizes:
        return None
    size = f"{frame_wh[0]}x{frame_wh[1]}"
    if size in train_frame_sizes:
        return None
    trained = ", ".join(list(train_frame_sizes)[:3]) + (", ..." if len(train_frame_sizes) > 3 else "")
    return (f"the line delivers {size} frames but bundle {bundle_path} was trained on {trained} frames: the model sees "
            "items at another resolution than it learned, and its accuracy and thresholds may not hold. Train on "
            "frames from this camera (for the synthetic line, set the source's width_px and height_px to the "
            "training size).")
