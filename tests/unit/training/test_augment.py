import numpy as np
import pytest

from training.augment import augment_batch, augmented_batches, build_augmentation


def test_augmenting_ahead_on_a_thread_gives_the_plain_loops_batches_bit_for_bit():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    batches = [np.sort(rng.choice(24, 8, replace=False)) for _ in range(5)]
    plain = build_augmentation(seed=7)
    expected = [augment_batch(plain, images[index]) for index in batches]
    for ahead in (False, True):
        got = list(augmented_batches(build_augmentation(seed=7), images, batches, ahead=ahead))
        assert [index.tolist() for index, _ in got] == [index.tolist() for index in batches]
        assert all(np.array_equal(batch, want) for (_, batch), want in zip(got, expected, strict=True))
        assert not all(np.array_equal(batch, images[index]) for index, batch in got)  # it did augment


def test_an_error_augmenting_ahead_reaches_the_training_loop_at_its_batch():
    class FailsOnSecondCall:
        calls = 0

        def __call__(self, image):
            self.calls += 1
            if self.calls == 2:
                raise ValueError("augmentation failed")
            return {"image": image}

    images = np.zeros((4, 32, 32, 3), dtype=np.uint8)
    batches = augmented_batches(FailsOnSecondCall(), images, [np.array([0]), np.array([1]), np.array([2])], ahead=True)
    assert next(batches)[0].tolist() == [0]
    with pytest.raises(ValueError, match="augmentation failed"):
        next(batches)
