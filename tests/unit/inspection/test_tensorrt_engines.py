"""Which engine a bundle may run: refused for another GPU or TensorRT version, with the rebuild command.
Pure logic, no TensorRT needed; real engines are built in tests/integration/test_tensorrt.py."""

import pytest

from inspection.backends.tensorrt_backend import matching_engine
from inspection.bundle import Bundle, BundleMeta, EngineEntry
from inspection.decision import DecisionPolicy
from inspection.errors import BackendUnavailableError
from inspection.input_spec import default_input_spec
from training.tensorrt_export import engine_file_name


def bundle_with(*engines: EngineEntry) -> Bundle:
    classes = ("good", "chipped")
    policy = DecisionPolicy(class_names=classes, good_classes=("good",), pass_threshold=0.5, reject_threshold=0.5)
    meta = BundleMeta(name="b", created_utc="2026-01-01T00:00:00Z", class_names=classes, good_classes=("good",),
                      input=default_input_spec(64, 3), policy=policy, engines=engines)
    return Bundle(path=__import__("pathlib").Path("/bundles/b"), meta=meta, bundle_hash="x")


def engine(gpu="NVIDIA H100 80GB HBM3", cc="9.0", trt="10.9.0", precision="fp16") -> EngineEntry:
    return EngineEntry(file=engine_file_name(gpu, cc, trt, precision), gpu_name=gpu, compute_capability=cc,
                       tensorrt_version=trt, precision=precision, max_batch=64)


def test_engine_names_carry_gpu_capability_version_and_precision():
    assert engine_file_name("NVIDIA H100 80GB HBM3", "9.0", "10.9.0", "int8") == "engines/nvidia-h100-80gb-hbm3_sm90_trt10.9.0_int8.engine"


def test_the_engine_for_this_gpu_and_version_is_chosen():
    wanted = engine()
    bundle = bundle_with(engine(gpu="NVIDIA L4", cc="8.9"), wanted, engine(precision="fp32"))
    assert matching_engine(bundle, "fp16", "NVIDIA H100 80GB HBM3", "9.0", "10.9.0") == wanted


@pytest.mark.parametrize("gpu, cc, trt", [("NVIDIA L4", "8.9", "10.9.0"), ("NVIDIA H100 80GB HBM3", "9.0", "10.11.0")])
def test_an_engine_for_another_gpu_or_version_is_refused_with_the_rebuild_command(gpu, cc, trt):
    bundle = bundle_with(engine())
    with pytest.raises(BackendUnavailableError) as caught:
        matching_engine(bundle, "fp16", gpu, cc, trt)
    message = str(caught.value)
    assert "nvidia-h100-80gb-hbm3_sm90_trt10.9.0_fp16.engine" in message
    assert "inspection export /bundles/b --tensorrt --precision fp16" in message


def test_a_missing_engine_is_refused():
    with pytest.raises(BackendUnavailableError, match="has no int8 TensorRT engine"):
        matching_engine(bundle_with(engine()), "int8", "NVIDIA H100 80GB HBM3", "9.0", "10.9.0")


def test_without_tensorrt_the_backend_says_it_is_not_installed():
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    from inspection.backends import open_backend

    with pytest.raises(BackendUnavailableError, match="TensorRT is not installed"):
        open_backend("tensorrt", bundle_with(engine()), device="cuda")
