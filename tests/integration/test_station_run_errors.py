"""Which finished runs fail (exit 1) and what they say: every item has its record, but the line
could not act on some outcomes."""

import copy

import pytest

from inspection.cli import station_run_errors
from station.config import StationConfig
from station.runner import RunLimits, run_station


@pytest.fixture(scope="module")
def clean_summary(tiny_bundle, tmp_path_factory) -> dict:
    archive = tmp_path_factory.mktemp("run-errors") / "archive"
    config = StationConfig.model_validate({
        "bundle": str(tiny_bundle), "station": {"lot": "E1"},
        "source": {"kind": "synthetic", "pool_size": 8, "width_px": 96, "height_px": 96},
        "archive": {"path": str(archive)},
    })
    return run_station(config, RunLimits(frames=20), progress=False)


def with_gate(summary: dict, **counts: int) -> dict:
    changed = copy.deepcopy(summary)
    changed["gate"].update(counts)
    return changed


def test_a_clean_run_has_no_errors(clean_summary):
    assert clean_summary["balanced"] and clean_summary["gate"]["missed_gate"] == 0
    assert station_run_errors(clean_summary, None) == []


def test_items_that_missed_the_reject_gate_fail_the_run_and_say_to_segregate(clean_summary):
    errors = station_run_errors(with_gate(clean_summary, missed_gate=2), None)
    assert len(errors) == 1 and errors[0].startswith("2 items passed the reject gate before their result could fire")
    assert "segregate the product" in errors[0]


def test_results_the_plc_never_got_fail_the_run(clean_summary):
    errors = station_run_errors(with_gate(clean_summary, publish_failures=3), None)
    assert len(errors) == 1 and errors[0].startswith("3 items were not signalled to the PLC")


def test_an_archive_that_fails_its_audit_names_the_command_to_inspect_it(clean_summary, tmp_path):
    broken = {**clean_summary, "audit_verified": False, "audit_first_bad": "record 7: hash mismatch"}
    [error] = station_run_errors(broken, tmp_path / "archive")
    assert "record 7: hash mismatch" in error and f"inspection audit verify {tmp_path / 'archive'}" in error


def test_a_failed_archive_names_the_items_without_a_record_and_the_passes_among_them_to_segregate(clean_summary):
    failed = {**clean_summary, "unarchived": 3, "unarchived_sequences": [17, 18, 20], "unarchived_passed_sequences": [17, 20],
              "archive_failure": "cannot write 3 records: [Errno 28] No space left on device"}
    [error] = station_run_errors(failed, None)
    assert error.startswith("3 items have no archive record (sequences 17 to 20): cannot write 3 records")
    assert "2 of them passed the reject gate before the failure was known (sequences 17, 20): segregate that product" in error
    many = {**failed, "unarchived_passed_sequences": list(range(30, 55))}
    [error] = station_run_errors(many, None)
    assert "(sequences 30, 31, 32, 33, 34, 35, 36, 37, 38, ... 54 (25 in all))" in error


def test_a_failed_archive_that_released_nothing_says_so(clean_summary):
    failed = {**clean_summary, "unarchived": 2, "unarchived_sequences": [5, 6], "unarchived_passed_sequences": [],
              "archive_failure": "disk full"}
    [error] = station_run_errors(failed, None)
    assert "None of them was released: every pass from the failure on was rejected as a fault" in error
