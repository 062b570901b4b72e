import pytest

from station.runner import inference_threads_left


@pytest.mark.parametrize(("cores", "prepare_threads", "expected"), [(2, 1, 1), (16, 1, 15), (16, 8, 8), (1, 1, 1), (4, 6, 1)])
def test_the_model_gets_the_cores_preparation_leaves(cores: int, prepare_threads: int, expected: int) -> None:
    assert inference_threads_left(cores, prepare_threads) == expected
