"""The preset schema: every key with its type, default and a one-line meaning.

Presets are TOML files parsed into these frozen dataclasses by :mod:`segcli.config.load`. The
config reference in ``docs/config.md`` is generated from this file (``python -m
segcli.config.reference``), and a test fails when it is stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


def opt(default: Any, doc: str, *, minimum: float | None = None, maximum: float | None = None) -> Any:
    """A schema field: default, one-line doc, optional numeric bounds (checked on load)."""
    meta = {"doc": doc, "minimum": minimum, "maximum": maximum}
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for sequence defaults; presets are immutable")
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class DataConfig:
    """Where the dataset is and how it is batched."""

    root: str = opt("data/shapes", "dataset folder in the segcli format (see `seg prepare`)")
    train_split: str = opt("train", "split used for training")
    val_split: str = opt("val", "split used for validation every epoch")
    batch_size: int = opt(8, "images per training batch (per process under torchrun)", minimum=1)
    num_workers: int = opt(2, "data-loading worker processes (0 loads in the main process)", minimum=0)
    pin_memory: bool = opt(True, "pin host memory for faster copies to CUDA (ignored on CPU)")
    check_samples: int = opt(16, "masks per split checked for bad values before training (0 skips)", minimum=0)


@dataclass(frozen=True)
class ModelConfig:
    """The network: a timm backbone plus a decoder from the model registry."""

    name: str = opt("fpn", "decoder architecture from the model registry (`seg models`)")
    backbone: str = opt("resnet18", "timm model name with features_only support")
    pretrained: bool = opt(False, "load timm's pretrained backbone weights (needs them downloadable)")
    pretrained_file: str = opt("", "local .safetensors/.pth file or timm folder with backbone weights")
    decoder_channels: int = opt(128, "width of the decoder", minimum=1)
    output_stride: Literal[0, 8, 16, 32] = opt(
        0, "encoder output stride via timm dilation; 0 = the model's own (16 deeplab*/lraspp, 8 pspnet, else 32)"
    )
    aux_stages: tuple[int, ...] = opt(
        (), "encoder stage indices (0 = finest) that get an auxiliary FCN head while training"
    )
    builtin_aux: bool = opt(True, "use the built-in auxiliary heads of bisenetv1/bisenetv2/ddrnet23_slim in training")
    aux_weights: tuple[float, ...] = opt(
        (), "loss weight of each auxiliary output in order; empty = 0.4 each, one value = the same for all"
    )
    attention: Literal["none", "scse"] = opt("none", "attention block in the decoders (scse = spatial+channel SE)")
    separable: bool = opt(False, "use depthwise-separable 3x3 convolutions in the decoders")
    dropout: float = opt(0.1, "dropout before the classifier", minimum=0.0, maximum=1.0)
    mean: tuple[float, ...] = opt((0.485, 0.456, 0.406), "per-channel mean of input pixels in [0, 1]")
    std: tuple[float, ...] = opt((0.229, 0.224, 0.225), "per-channel std of input pixels in [0, 1]")


@dataclass(frozen=True)
class LossConfig:
    """What is minimised."""

    name: Literal["ce"] = opt("ce", "loss function")
    class_weights: tuple[float, ...] | str = opt(
        (), "per-class weights, or a TOML file written by `seg class-weights`; empty = unweighted"
    )
    label_smoothing: float = opt(0.0, "cross-entropy label smoothing", minimum=0.0, maximum=1.0)


@dataclass(frozen=True)
class OptimConfig:
    """The optimiser."""

    name: Literal["adamw", "sgd"] = opt("adamw", "optimiser")
    lr: float = opt(1e-3, "peak learning rate", minimum=0.0)
    weight_decay: float = opt(1e-4, "decoupled (AdamW) or L2 (SGD) weight decay", minimum=0.0)
    momentum: float = opt(0.9, "SGD momentum", minimum=0.0, maximum=1.0)
    nesterov: bool = opt(False, "SGD Nesterov momentum")
    betas: tuple[float, ...] = opt((0.9, 0.999), "AdamW betas")


@dataclass(frozen=True)
class ScheduleConfig:
    """The learning-rate schedule, stepped every iteration."""

    name: Literal["poly", "constant"] = opt("poly", "lr schedule after warmup")
    power: float = opt(0.9, "poly exponent: lr = peak * (1 - t)^power", minimum=0.0)
    min_lr: float = opt(0.0, "learning rate at the end of the schedule", minimum=0.0)
    warmup_iters: int = opt(0, "linear warmup length in iterations", minimum=0)
    warmup_factor: float = opt(0.1, "lr at the start of warmup, as a fraction of the peak", minimum=0.0)


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation (paired: masks use nearest-neighbour, pad with ignore_index)."""

    scale: tuple[float, ...] = opt((0.5, 2.0), "random rescale range [min, max] of the image")
    crop_size: tuple[int, ...] = opt((512, 512), "random crop [height, width]; padded when larger")
    hflip: float = opt(0.5, "probability of a horizontal flip", minimum=0.0, maximum=1.0)
    brightness: float = opt(0.2, "colour jitter: max relative brightness change", minimum=0.0)
    contrast: float = opt(0.2, "colour jitter: max relative contrast change", minimum=0.0)
    saturation: float = opt(0.2, "colour jitter: max relative saturation change", minimum=0.0)
    hue: float = opt(0.0, "colour jitter: max hue shift as a fraction of the hue circle", minimum=0.0, maximum=0.5)


@dataclass(frozen=True)
class TrainConfig:
    """The training loop and where its run directory goes."""

    epochs: int = opt(10, "passes over the training split", minimum=1)
    device: str = opt("auto", "auto, cpu, cuda or cuda:N")
    amp: Literal["none", "bf16", "fp16"] = opt(
        "none", "autocast precision: bf16 on CPU or CUDA, fp16 on CUDA (with a grad scaler)"
    )
    channels_last: bool = opt(False, "use the channels_last memory format (often faster on CPU and GPU)")
    seed: int = opt(0, "seed for weights, shuffling and augmentation")
    deterministic: bool = opt(False, "use deterministic algorithms (slower, bitwise repeatable)")
    grad_clip: float = opt(0.0, "clip the gradient norm to this value (0 = off)", minimum=0.0)
    val_every: int = opt(1, "validate every N epochs (the last epoch is always validated)", minimum=1)
    monitor: str = opt("mIoU", "validation metric that picks weights/best.safetensors (higher is better)")
    out_dir: str = opt("runs", "parent of run directories: <out_dir>/<name>/<N>")
    name: str = opt("", "run name; empty = the preset file's stem")
    threads: int = opt(0, "torch intra-op threads on CPU (0 = torch's default)", minimum=0)


@dataclass(frozen=True)
class EvalConfig:
    """Validation, `seg eval` and `seg infer`."""

    size: tuple[int, ...] = opt((), "resize inputs to [height, width] before the model; empty = native size")
    batch_size: int = opt(4, "images per evaluation batch", minimum=1)
    absent: Literal["nan", "zero", "one"] = opt(
        "nan", "IoU of a class absent from both prediction and ground truth (nan = left out of the mean)"
    )


@dataclass(frozen=True)
class Preset:
    """A complete, resolved recipe."""

    data: DataConfig = field(default_factory=DataConfig, metadata={"doc": DataConfig.__doc__})
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"doc": ModelConfig.__doc__})
    loss: LossConfig = field(default_factory=LossConfig, metadata={"doc": LossConfig.__doc__})
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"doc": OptimConfig.__doc__})
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig, metadata={"doc": ScheduleConfig.__doc__})
    augment: AugmentConfig = field(default_factory=AugmentConfig, metadata={"doc": AugmentConfig.__doc__})
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"doc": TrainConfig.__doc__})
    eval: EvalConfig = field(default_factory=EvalConfig, metadata={"doc": EvalConfig.__doc__})
