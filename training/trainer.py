"""The training loop: seeded, checkpointed every epoch, resumable, early-stopped on validation."""

from __future__ import annotations

import copy
import errno
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn
from torch.nn import functional as F

from inspection.console import progress_bar
from inspection.errors import BackendUnavailableError, ConfigError, first_line
from inspection.input_spec import InputSpec
from training.augment import augmented_batches, build_augmentation
from training.loss import InspectionLoss
from inspection.backends.torch_model import InspectionClassifier, WithSoftmax
from training.models import build_classifier
from training.recipe import TrainRecipe
from training.start_checks import CHECKPOINT_NAME, check_checkpoint_presence

EVAL_BATCH = 128


@dataclass(frozen=True)
class LabeledImages:
    images: np.ndarray  # (N, H, W, C) uint8, already `prepare`d
    labels: np.ndarray  # (N,) int64 class indices


@dataclass
class TrainResult:
    classifier: InspectionClassifier  # best epoch's weights, eval mode, on CPU
    device: str
    best_epoch: int
    epochs_planned: int  # the recipe's epochs, or fewer to fit its time budget
    epochs_run: int
    stopped_early: bool
    # How the kept epoch was chosen: "best validation epoch", or "last epoch" and why validation could not choose.
    model_selection: str
    seconds: float
    train_images_per_s: float
    history: list[dict] = field(default_factory=list)


def resolve_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError("--device cuda was asked for but torch sees no CUDA GPU. Use --device cpu or auto.")
    if requested not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device '{requested}'; use auto, cpu or cuda.")
    return requested


def epochs_to_plan(max_epochs: int, first_epoch_s: float, time_budget_s: float | None) -> int:
    """As many epochs as fit the time budget at the first epoch's pace: at least 1, at most `max_epochs`."""
    if time_budget_s is None:
        return max_epochs
    return max(1, min(max_epochs, int(time_budget_s // max(first_epoch_s, 1e-9))))


def learning_rate_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up then cosine decay: a pure function of the step, so resuming needs no scheduler state."""
    if warmup_steps and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class WeightAverage:
    """Exponential moving average of a model's parameters and BatchNorm statistics (as timm's ModelEma).

    The decay ramps up from 0 over the first steps, so early in a run the average follows the model
    instead of its random initialisation."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        averaged = list(self.model.parameters())
        torch._foreach_mul_(averaged, decay)
        torch._foreach_add_(averaged, [p.detach() for p in model.parameters()], alpha=1.0 - decay)
        for own, current in zip(self.model.buffers(), model.buffers()):
            if own.is_floating_point():
                own.mul_(decay).add_(current, alpha=1.0 - decay)
            else:
                own.copy_(current)


def class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights so a rare defect class counts as much as the common good class."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def epoch_order(rng: np.random.Generator, sample_loss: np.ndarray, boost: float) -> np.ndarray:
    """The images of one epoch, as many draws as images. With `boost` 0, each image once, shuffled.
    Otherwise drawn with replacement, each with chance proportional to 1 + min(loss / mean loss, boost):
    the training time goes where the model is still wrong (in the synthetic runs, thin
    fibres it called cracks), and the cap keeps a few ambiguous images from taking over an epoch.
    """
    if boost == 0:
        return rng.permutation(len(sample_loss))
    mean = float(sample_loss.mean())
    weights = 1.0 + np.minimum(sample_loss / mean, boost) if mean > 0 else np.ones_like(sample_loss)
    return rng.choice(len(sample_loss), size=len(sample_loss), replace=True, p=weights / weights.sum())


def classes_missing_from(val_labels: np.ndarray, train_labels: np.ndarray, class_names: list[str]) -> list[str]:
    """Names of the classes in the training labels that the validation labels lack (all of them for an empty split)."""
    return [class_names[i] for i in sorted(set(train_labels.tolist()) - set(val_labels.tolist()))]


def train_classifier(
    train: LabeledImages,
    val: LabeledImages,
    class_names: list[str],
    spec: InputSpec,
    recipe: TrainRecipe,
    checkpoint_dir: Path,
    dataset_hash: str,
    resume: bool = False,
    progress: bool = True,
    *,
    good_classes: tuple[str, ...],
) -> TrainResult:
    device = resolve_device(recipe.device)
    torch.manual_seed(recipe.seed)
    weights_path = Path(recipe.weights) if recipe.weights else None
    model = build_classifier(recipe.model, len(class_names), spec, weights_path).to(device)
    model = model.to(memory_format=torch.channels_last)
    # The fused update is one kernel over all parameters: about 4% faster per step on the 2-core CPU.
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay, fused=True)
    use_amp = device == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    good_mask = torch.tensor([name in good_classes for name in class_names])
    loss_fn = InspectionLoss(class_weights(train.labels, len(class_names)), good_mask, recipe.good_vs_defect_weight).to(device)
    transform = build_augmentation(recipe.seed)

    missing_from_val = classes_missing_from(val.labels, train.labels, class_names)
    # A validation split without some class trained on scores only the classes it has: selecting and
    # early-stopping on it favours epochs that call everything one of those (pill_defects, whose two
    # good pills go to train and test, stopped at the epoch that called every good test pill defective).
    # Then each epoch scores by its number alone: every one improves on the last, so none stops the
    # run and the last is kept.
    model_selection = (f"last epoch: the validation split has no {', '.join(missing_from_val)}" if missing_from_val
                       else "best validation epoch")
    steps_per_epoch = max(1, len(train.images) // recipe.batch_size)
    warmup_steps = int(recipe.warmup_epochs * steps_per_epoch)
    average = WeightAverage(model, recipe.ema_decay) if recipe.ema_decay > 0 else None
    state = _initial_state(checkpoint_dir, resume, recipe, dataset_hash, model, optimizer, average, len(train.images))
    start = time.perf_counter()
    images_seen = 0

    columns = (
        TextColumn("[bold]epoch {task.fields[epoch]}"),
        BarColumn(),
        TextColumn("loss {task.fields[loss]:.3f} acc {task.fields[acc]:.3f} val_acc {task.fields[val_acc]:.3f}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )

    def epochs_planned() -> int:
        # Until the first epoch has set the plan, the schedule assumes the recipe's epochs; the
        # warm-up (one epoch by default) does not depend on it, so the plan changes no step taken.
        return state["epochs_planned"] or recipe.epochs

    with progress_bar(*columns, enabled=progress) as bar:
        task = bar.add_task("train", total=steps_per_epoch * epochs_planned(), completed=state["epoch"] * steps_per_epoch,
                            epoch=f"{state['epoch']}/{epochs_planned()}", loss=0.0, acc=0.0, val_acc=0.0)
        while state["epoch"] < epochs_planned():
            if state["epochs_since_best"] >= recipe.patience_epochs:
                break
            epoch, epoch_start = state["epoch"], time.perf_counter()
            total_steps = steps_per_epoch * epochs_planned()
            bar.update(task, epoch=f"{epoch + 1}/{epochs_planned()}")
            model.train()
            # Everything random in an epoch derives from (seed, epoch): a resumed run repeats it exactly.
            rng = np.random.default_rng([recipe.seed, epoch])
            transform.set_random_seed(recipe.seed * 100_003 + epoch)
            torch.manual_seed(recipe.seed * 100_003 + epoch)
            order = epoch_order(rng, state["sample_loss"].numpy(), recipe.hard_example_boost)
            loss_sum, correct, seen = 0.0, 0, 0
            batches = [np.sort(order[step * recipe.batch_size : (step + 1) * recipe.batch_size]) for step in range(steps_per_epoch)]
            for step, (index, augmented) in enumerate(augmented_batches(transform, train.images, batches, ahead=device == "cuda")):
                batch = torch.from_numpy(augmented).to(device)
                target = torch.from_numpy(train.labels[index]).to(device)
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate_at(epoch * steps_per_epoch + step, total_steps, warmup_steps, recipe.learning_rate)
                with torch.autocast(device_type=device, dtype=torch.float16, enabled=use_amp):
                    logits = model(batch)
                    loss = loss_fn(logits.float(), target)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                if average is not None:
                    average.update(model, epoch * steps_per_epoch + step)
                with torch.no_grad():
                    state["sample_loss"][torch.from_numpy(index)] = F.cross_entropy(logits.float(), target, reduction="none").cpu()
                loss_sum += float(loss.detach()) * len(index)
                correct += int((logits.argmax(1) == target).sum())
                seen += len(index)
                images_seen += len(index)
                bar.update(task, advance=1, loss=loss_sum / seen, acc=correct / seen)
            kept = average.model if average is not None else model
            val_loss, val_acc = evaluate_loss(kept, val, loss_fn, device) if len(val.images) else (loss_sum / seen, correct / seen)
            epoch_s = time.perf_counter() - epoch_start  # training and validation, as the time budget counts it
            record = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": correct / seen, "val_loss": val_loss, "val_acc": val_acc,
                      "seconds": round(epoch_s, 2)}
            state["history"].append(record)
            bar.update(task, val_acc=val_acc)
            score = (epoch + 1,) if missing_from_val else (val_acc, -val_loss)
            if state["best_score"] is None or score > tuple(state["best_score"]):
                state.update(best_score=list(score), best_epoch=epoch + 1, epochs_since_best=0,
                             best_model=copy.deepcopy(kept.state_dict()))
            else:
                state["epochs_since_best"] += 1
            state["epoch"] = epoch + 1
            if state["epochs_planned"] is None:
                state["epochs_planned"] = epochs_to_plan(recipe.epochs, epoch_s, recipe.time_budget_s)
                bar.update(task, total=steps_per_epoch * epochs_planned())
            _save_checkpoint(checkpoint_dir, state, model, optimizer, recipe, dataset_hash, average)
    seconds = time.perf_counter() - start
    model.load_state_dict(state["best_model"])
    model = model.to("cpu").to(memory_format=torch.contiguous_format).eval()
    return TrainResult(
        classifier=model,
        device=device,
        best_epoch=state["best_epoch"],
        epochs_planned=epochs_planned(),
        epochs_run=state["epoch"],
        stopped_early=state["epoch"] < epochs_planned(),
        model_selection=model_selection,
        seconds=seconds,
        train_images_per_s=images_seen / seconds if seconds > 0 else 0.0,
        history=state["history"],
    )


@torch.no_grad()
def evaluate_loss(model: nn.Module, data: LabeledImages, loss_fn: nn.Module, device: str) -> tuple[float, float]:
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, len(data.images), EVAL_BATCH):
        batch = torch.from_numpy(data.images[start : start + EVAL_BATCH]).to(device)
        target = torch.from_numpy(data.labels[start : start + EVAL_BATCH]).to(device)
        logits = model(batch).float()
        loss_sum += float(loss_fn(logits, target)) * len(target)
        correct += int((logits.argmax(1) == target).sum())
    return loss_sum / len(data.images), correct / len(data.images)


@torch.no_grad()
def predict_probabilities(model: nn.Module, images: np.ndarray, orientation_average: bool = False, device: str = "cpu") -> np.ndarray:
    """What the exported model serves for `images`, computed in torch (the parity reference)."""
    served = WithSoftmax(model, orientation_average).eval()
    out = []
    for start in range(0, len(images), EVAL_BATCH):
        batch = torch.from_numpy(images[start : start + EVAL_BATCH]).to(device)
        out.append(served(batch).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def _initial_state(checkpoint_dir: Path, resume: bool, recipe: TrainRecipe, dataset_hash: str, model: nn.Module, optimizer,
                   average: WeightAverage | None, train_images: int) -> dict:
    path = check_checkpoint_presence(checkpoint_dir, resume)
    # Each training image's loss when last drawn (epoch_order); equal until an image is drawn.
    fresh = {"epoch": 0, "epochs_planned": None, "history": [], "best_score": None, "best_epoch": 0, "epochs_since_best": 0,
             "best_model": copy.deepcopy(model.state_dict()), "sample_loss": torch.ones(train_images)}
    if not resume:
        return fresh
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        saved_hash, saved_recipe = saved["dataset_hash"], saved["recipe"]
    except Exception as exc:  # truncated, corrupt or foreign file: torch raises many kinds
        raise ConfigError(f"{path} cannot be read as a training checkpoint ({type(exc).__name__}). Delete {checkpoint_dir} "
                          "and train without --resume.") from None
    if saved_hash != dataset_hash:
        raise ConfigError(f"{path} was trained on another dataset (hash {saved_hash[:12]}). Resume with the same DATA, or start fresh.")
    if saved_recipe != recipe.model_dump(mode="json"):
        raise ConfigError(f"{path} was trained with another recipe. Resume with the same options, or start fresh.")
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if average is not None:
        average.model.load_state_dict(saved["average"])
    return {k: saved.get(k, fresh[k]) for k in fresh}  # checkpoints before the time budget have no epochs_planned


def _save_checkpoint(checkpoint_dir: Path, state: dict, model: nn.Module, optimizer, recipe: TrainRecipe, dataset_hash: str,
                     average: WeightAverage | None) -> None:
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    # The recipe as plain JSON values: torch.load(weights_only=True) refuses pickled classes such as ShrinkMode.
    payload = dict(state, model=model.state_dict(), optimizer=optimizer.state_dict(), recipe=recipe.model_dump(mode="json"), dataset_hash=dataset_hash)
    if average is not None:
        payload["average"] = average.model.state_dict()
    tmp = checkpoint_dir / (CHECKPOINT_NAME + ".tmp")
    try:
        torch.save(payload, tmp)
    except (OSError, RuntimeError) as exc:  # torch reports a full disk as a RuntimeError of its zip writer
        tmp.unlink(missing_ok=True)
        raise OSError(errno.EIO, f"cannot write the checkpoint ({first_line(exc)}): disk full or not writable", str(tmp)) from None
    tmp.replace(checkpoint_dir / CHECKPOINT_NAME)
