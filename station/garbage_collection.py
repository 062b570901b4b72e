"""Keep Python's full garbage collections short while a line runs.

A full collection walks every tracked object and holds the GIL throughout. After importing torch,
ONNX Runtime, OpenCV and the rest, a station process holds a few hundred thousand such objects, so a
full collection took 45 ms on the 2-core benchmark machine: the reject gate's thread could not run,
and about 20 items in a row missed their gate window (rejected as faults) early in every unpaced run.
Objects that exist when the line starts are moved out of the collector's reach (`gc.freeze`), so a
collection during the run walks only what the run itself created.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def startup_objects_frozen() -> Iterator[None]:
    gc.collect()  # what is already garbage is freed now, before the line starts, not kept forever
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
