import json
from pathlib import Path

import pytest

from inspection.errors import ConfigError, OutputExistsError
from inspection.synthetic.definition import default_output_for, load_definition, make_dataset

REPO_DATASETS = Path(__file__).resolve().parents[3] / "datasets"


def write_definition(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_every_committed_definition_is_valid():
    definitions = sorted(REPO_DATASETS.glob("*.yaml"))
    assert len(definitions) >= 7
    for path in definitions:
        definition = load_definition(path)
        assert definition.count_per_class >= 300 and definition.description


def test_make_renders_the_set_beside_the_definition_then_leaves_it_alone(tmp_path):
    path = write_definition(tmp_path, "tiny", "count_per_class: 1\nseed: 4\nsize_px: [96, 64]\nproduct: pink-oval\n")
    first = make_dataset(path, progress=False)
    assert first.made and first.path == tmp_path / "generated" / "tiny" == default_output_for(path)
    assert first.summary["seed"] == 4 and first.summary["size_px"] == [96, 64] and first.summary["total"] == 7
    stamp = {p: p.stat().st_mtime_ns for p in first.path.rglob("*.png")}
    again = make_dataset(path, progress=False)
    assert not again.made and again.summary == json.loads((first.path / "synth.json").read_text())
    assert {p: p.stat().st_mtime_ns for p in first.path.rglob("*.png")} == stamp


def test_a_folder_holding_another_set_is_refused_and_kept(tmp_path):
    make_dataset(write_definition(tmp_path, "a", "count_per_class: 1\nsize_px: 64\n"), tmp_path / "out", progress=False)
    files = sorted(p.name for p in (tmp_path / "out").rglob("*"))
    # The same square given as a pair is the same dataset.
    assert not make_dataset(write_definition(tmp_path, "pair", "count_per_class: 1\nsize_px: [64, 64]\n"), tmp_path / "out",
                            progress=False).made
    other = write_definition(tmp_path, "b", "count_per_class: 1\nsize_px: 64\nseed: 9\n")
    with pytest.raises(OutputExistsError, match=r"seed 0 \(defined: 9\)"):
        make_dataset(other, tmp_path / "out", progress=False)
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == files


def test_a_definition_that_is_missing_or_a_folder_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.yaml does not exist\. Pass the path of a YAML file"):
        make_dataset(tmp_path / "nope.yaml", progress=False)
    with pytest.raises(ConfigError, match="is a folder"):
        make_dataset(tmp_path, progress=False)


@pytest.mark.parametrize("text, needle", [
    ("count_per_class: 1\nsead: 3\n", "unknown key 'sead'"),
    ("count_per_class: 1\nproduct: purple-square\n", "unknown product 'purple-square'"),
    ("count_per_class: 0\n", "count_per_class"),
    ("seed: 1\n", "missing required key 'count_per_class'"),
    ("count_per_class: 1\ncount_per_class: 2\n", "appears twice"),
    ("- 1\n", "must hold a mapping"),
])
def test_a_bad_definition_is_one_clear_error(tmp_path, text, needle):
    with pytest.raises(ConfigError, match=needle) as raised:
        make_dataset(write_definition(tmp_path, "bad", text), progress=False)
    assert "\n" not in str(raised.value) and str(tmp_path / "bad.yaml") in str(raised.value)
    assert not (tmp_path / "generated").exists()
