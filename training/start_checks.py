"""What a training run checks before it imports torch and loads the dataset (seconds to minutes), so
that a mistyped option is told at once: the files it names, and whether a checkpoint is there."""

from __future__ import annotations

from pathlib import Path

from inspection.errors import ConfigError, OutputExistsError

CHECKPOINT_NAME = "last.pt"


def check_weights_file(path: Path) -> None:
    if not Path(path).is_file():
        raise ConfigError(f"weights file {path} does not exist. Pass a local .safetensors or .pt state dict.")


def check_checkpoint_presence(checkpoint_dir: Path, resume: bool) -> Path:
    """The checkpoint file: there when resuming, absent otherwise (an earlier run's is never overwritten)."""
    path = Path(checkpoint_dir) / CHECKPOINT_NAME
    if resume and not path.exists():
        raise ConfigError(f"--resume was given but {path} does not exist. Run without --resume to start training.")
    if not resume and path.exists():
        raise OutputExistsError(f"{path} exists from an earlier run. Pass --resume to continue it, or delete {checkpoint_dir}.")
    return path
