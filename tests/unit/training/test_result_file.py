"""A benchmark rerun keeps the committed result it replaces."""

import json

import pytest

from inspection.errors import ConfigError
from training.bench.result_file import PREVIOUS_KEY, write_result


def test_each_rerun_nests_the_result_it_replaces(tmp_path):
    path = tmp_path / "result.json"
    for run in (1, 2, 3):
        write_result(path, {"run": run})
    saved = json.loads(path.read_text())
    assert saved["run"] == 3 and saved[PREVIOUS_KEY]["run"] == 2 and saved[PREVIOUS_KEY][PREVIOUS_KEY] == {"run": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_a_file_that_is_not_a_result_is_left_alone(tmp_path):
    path = tmp_path / "result.json"
    path.write_text("notes, not JSON")
    with pytest.raises(ConfigError, match="not a JSON result"):
        write_result(path, {"run": 1})
    assert path.read_text() == "notes, not JSON"
