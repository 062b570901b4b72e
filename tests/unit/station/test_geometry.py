from station.geometry import frame_size_warning


def test_a_training_size_gives_no_warning() -> None:
    assert frame_size_warning((224, 224), {"224x224": 1400, "640x480": 70}, "b") is None
    assert frame_size_warning((640, 480), {"224x224": 1400, "640x480": 70}, "b") is None


def test_another_size_names_both_and_the_fix() -> None:
    message = frame_size_warning((640, 480), {"224x224": 1470}, "runs/b")
    assert message is not None and "\n" not in message
    assert "640x480 frames" in message and "runs/b was trained on 224x224" in message
    assert "Train on frames from this camera" in message and "width_px and height_px" in message


def test_many_training_sizes_are_shortened() -> None:
    sizes = {f"{w}x{w}": 1 for w in range(100, 106)}
    message = frame_size_warning((64, 64), sizes, "b")
    assert message is not None and "100x100, 101x101, 102x102, ..." in message


def test_unknown_frames_or_training_sizes_give_no_warning() -> None:
    assert frame_size_warning(None, {"224x224": 1}, "b") is None
    assert frame_size_warning((640, 480), None, "b") is None  # an imported bundle records no data
    assert frame_size_warning((640, 480), {}, "b") is None
