"""Dataset definitions: YAML files in datasets/ that name a synthetic set, made by `inspection data make`.

A definition holds what `inspection data synth` takes as options, so the sets behind the README's
figures are in the repository as a few lines each and their images are made again on demand
(same seed, same generator version: the same pixels). The images go to `generated/<name>` beside
the definition unless another folder is given; that folder is git-ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator

from inspection.errors import ConfigError, OutputExistsError
from inspection.synthetic.dataset import DEFAULT_PNG_LEVEL, write_dataset
from inspection.synthetic.products import MIXED, check_product
from inspection.synthetic.render import GENERATOR_VERSION
from inspection.validation import StrictModel, parse_model
from inspection.yaml_file import read_yaml_mapping

EXAMPLES_HINT = "see datasets/*.yaml in the repository"


class SyntheticDefinition(StrictModel):
    description: str = ""
    count_per_class: int = Field(ge=1)
    seed: int = Field(default=0, ge=0)
    # A square's side in px, or [width, height] for frames the size of a line's camera.
    size_px: int | tuple[int, int] = 224
    product: str = MIXED
    png_level: int = Field(default=DEFAULT_PNG_LEVEL, ge=0, le=9)

    @field_validator("product")
    @classmethod
    def _known_product(cls, name: str) -> str:
        try:
            check_product(name)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return name


@dataclass(frozen=True)
class MadeDataset:
    path: Path
    made: bool  # False: the folder already held exactly this dataset
    summary: dict  # its synth.json


def load_definition(path: Path) -> SyntheticDefinition:
    return parse_model(SyntheticDefinition, read_yaml_mapping(path, "dataset definition", EXAMPLES_HINT), str(path))


def default_output_for(definition_path: Path) -> Path:
    return Path(definition_path).parent / "generated" / Path(definition_path).stem


def make_dataset(definition_path: Path, out: Path | None = None, progress: bool = True) -> MadeDataset:
    """Render the definition's dataset into `out` (default: generated/<name> beside it), unless it is already there."""
    definition = load_definition(definition_path)
    out = Path(out) if out is not None else default_output_for(definition_path)
    wanted = _identity(definition.seed, definition.size_px, definition.product, definition.count_per_class,
                       definition.png_level, GENERATOR_VERSION)
    summary_path = out / "synth.json"
    if summary_path.is_file():
        summary = _read_summary(summary_path)
        have = _identity(summary.get("seed"), summary.get("size_px"), summary.get("product"), summary.get("count_per_class"),
                         summary.get("image", {}).get("png_zlib_level"), summary.get("generator_version"))
        if have == wanted:
            return MadeDataset(out, made=False, summary=summary)
        differences = ", ".join(f"{key} {have[key]!r} (defined: {wanted[key]!r})" for key in wanted if have[key] != wanted[key])
        raise OutputExistsError(f"{out} holds another synthetic dataset: {differences}. Delete {out} to make it again, "
                                "or pass --out with a new folder.")
    summary = write_dataset(out, definition.count_per_class, seed=definition.seed, size_px=definition.size_px, progress=progress,
                            product=definition.product, png_level=definition.png_level)
    return MadeDataset(out, made=True, summary=summary)


def _identity(seed, size_px, product, count_per_class, png_level, generator_version) -> dict:
    """What decides a synthetic dataset's files, in comparable form: a size as [width, height]
    (a definition may give a square as one number or as a pair; synth.json writes it as one number)."""
    size = [size_px, size_px] if isinstance(size_px, int) else list(size_px or [])
    return {"seed": seed, "size_px": size, "product": product, "count_per_class": count_per_class, "png_level": png_level,
            "generator_version": str(generator_version)}


def _read_summary(path: Path) -> dict:
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        summary = None
    if not isinstance(summary, dict):
        raise ConfigError(f"{path} is not a synthetic dataset's summary (unreadable JSON). Delete {path.parent} and make it again.")
    return summary
