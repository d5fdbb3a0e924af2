"""The preset schema: every key with its type, default and a one-line meaning.

Presets are TOML files parsed into these frozen dataclasses by :mod:`segcli.config.load`. The
config reference in ``docs/config.md`` is generated from this file (``python -m
segcli.config.reference``), and a test fails when it is stale.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from segcli.errors import PresetError
from segcli.options import opt

__all__ = ["METRIC_KEYS", "MOVED_KEYS", "Preset", "opt", "parse_duration"]

# The validation metrics the trainer reports, in order; train.monitor must name one of them.
METRIC_KEYS = ("mIoU", "pixel_accuracy", "mean_accuracy", "fwIoU", "mean_dice")
AUTO_RULES = ("thin", "rare")  # train.auto_rules: the auto recipe's data rules (segcli/train/auto_recipe.py)

# Flat [loss] keys that moved into the tables of the terms they configure: key → ((term, option), ...).
# Loading a preset file that sets one fails with a "moved to" error; presets embedded in checkpoints
# written before the move are migrated (see ``load.preset_from_dict``).
MOVED_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "loss.label_smoothing": (("ce", "label_smoothing"), ("ohem", "label_smoothing"), ("topk", "label_smoothing")),
    "loss.ohem_thresh": (("ohem", "thresh"),),
    "loss.ohem_min_kept": (("ohem", "min_kept"),),
    "loss.topk_percent": (("topk", "percent"),),
    "loss.topk_warmup_iters": (("topk", "warmup_iters"),),
    "loss.focal_gamma": (("focal", "gamma"),),
    "loss.focal_alpha": (("focal", "alpha"),),
    "loss.dice_smooth": (("dice", "smooth"), ("jaccard", "smooth"), ("tversky", "smooth")),
    "loss.dice_log": (("dice", "log_loss"), ("jaccard", "log_loss"), ("tversky", "log_loss")),
    "loss.tversky_alpha": (("tversky", "alpha"),),
    "loss.tversky_beta": (("tversky", "beta"),),
    "loss.tversky_gamma": (("tversky", "gamma"),),
    "loss.lovasz_per_image": (("lovasz", "per_image"),),
}

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s)")


def format_duration(seconds: float) -> str:
    """Seconds as the duration text ``train.time_budget`` takes (``parse_duration(format_duration(s)) == s`` to
    the millisecond)."""
    return f"{seconds:.3f}s"


def parse_duration(text: str) -> float:
    """'90s', '15m', '1h30m', '1.5h' → seconds (PresetError naming train.time_budget otherwise)."""
    t = text.strip().lower().replace(" ", "")
    parts = _DURATION.findall(t)
    if not parts or "".join(n + u for n, u in parts) != t:
        raise PresetError(f"train.time_budget = {text!r}: use a duration such as 90s, 15m or 1h30m")
    seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise PresetError(f"train.time_budget = {text!r} must be positive")
    return seconds


def _loss_options(term: str) -> type:
    """The options dataclass of a registered loss (imports the loss registry, and torch, on first use)."""
    from segcli.losses.registry import loss_options

    return loss_options(term)


@dataclass(frozen=True)
class DataConfig:
    """Where the dataset is and how it is batched."""

    root: str = opt("data/shapes", "dataset folder in the segcli format (see `seg prepare`)")
    train_split: str = opt("train", "split used for training")
    val_split: str = opt("val", "split used for validation every epoch")
    batch_size: int = opt(
        8,
        "images per optimiser step across all processes (the global batch papers report); under torchrun or "
        "--devices each of N processes loads batch_size / N, so the recipe's lr holds on any number of GPUs",
        minimum=1,
        maximum=65536,
    )
    num_workers: int | Literal["auto"] = opt(
        "auto",
        "data-loading worker processes (0 loads in the main process); auto = the cores this process may use "
        "(its share under torchrun) less one for the training process",
        minimum=0,
    )
    cache: Literal["none", "ram"] = opt(
        "none", "ram = decode every training image once, before training, and keep it in memory (small datasets)"
    )
    pin_memory: bool = opt(True, "pin host memory for faster copies to CUDA (ignored on CPU)")
    check_samples: int = opt(16, "masks per split read by the sampled `seg check` before training (0 skips)", minimum=0)
    channels: int = opt(
        3,
        "channels of every image (3 = RGB; 1 = grey; 4 = RGB + near infrared, ...): read from TIFF (16-bit or "
        "float), PNG (8/16-bit) or extra-channel folders; the model's stem takes this many; model.mean/std need "
        "this many values",
        minimum=1,
        maximum=64,
    )


@dataclass(frozen=True)
class ModelConfig:
    """The network: a timm backbone plus a decoder from the model registry."""

    name: str = opt("fpn", "decoder architecture from the model registry (`seg models`)")
    backbone: str = opt(
        "resnet18",
        "timm model name with features_only support; the models with their own backbone (backbone `own` in "
        "`seg models`: bisenetv2, ddrnet23_slim, enet, segnet) reject model.backbone, model.pretrained and "
        "model.pretrained_file",
    )
    pretrained: bool = opt(False, "load timm's pretrained backbone weights (needs them downloadable)")
    pretrained_file: str = opt("", "local .safetensors/.pth file or timm folder with backbone weights")
    init_from: str = opt(
        "",
        "segcli weights (or a seg convert-ckpt output) to start the whole model from; a classifier for another "
        "number of classes is re-initialised (pretrained_file is for backbone-only weights)",
    )
    decoder_channels: int = opt(128, "width of the decoder", minimum=1)
    output_stride: Literal[0, 8, 16, 32] = opt(
        0, "encoder output stride via timm dilation; 0 = the model's own (16 deeplab*/lraspp, 8 pspnet, else 32)"
    )
    aux_stages: tuple[int, ...] = opt(
        (),
        "indices into timm's features_only stages that get an auxiliary FCN head (width in/4) while training; "
        "0 is the stem (stride 2), so on a ResNet 1 = layer1 ... 4 = layer4 (mmseg's aux head on layer3 is 3)",
    )
    builtin_aux: bool = opt(True, "use the built-in auxiliary heads of bisenetv1/bisenetv2/ddrnet23_slim in training")
    aux_weights: tuple[float, ...] = opt(
        (), "loss weight of each auxiliary output in order; empty = 0.4 each, one value = the same for all"
    )
    attention: Literal["none", "scse"] = opt("none", "attention block in the decoders (scse = spatial+channel SE)")
    separable: bool = opt(False, "use depthwise-separable 3x3 convolutions in the decoders")
    dropout: float = opt(0.1, "dropout before the classifier", minimum=0.0, maximum=1.0)
    neck: str = opt(
        "fpn",
        "the pyramid of fpn: fpn (top-down), panet (plus PANet's bottom-up path) or bifpn (EfficientDet's "
        "weighted bidirectional layers); models without a neck option reject it",
    )
    neck_repeats: int = opt(3, "BiFPN layers stacked when model.neck = bifpn (3 = EfficientDet-D0)", minimum=1)
    full_res: bool = opt(
        False,
        "unet, fpn, panet, bifpn: the decoder's output taken up to the input's resolution before the classifier "
        "(unet: one more level on two 3x3 convs of the image, the original U-Net's first level; fpn: up blocks "
        "through the encoder's finer features, then that level), so the logits come out at stride 1, not 2 (unet) "
        "or 4 (fpn); for structures 1-5 px wide; models without the option reject it",
    )
    mean: tuple[float, ...] | Literal["auto"] = opt(
        "auto",
        "per-channel mean of input pixels in [0, 1] (16-bit images: value / 65535; float images: as stored), one "
        "value per data.channels; auto = the backbone's timm pretrained_cfg mean (0.5 for many "
        "ViTs, CLIP's for CLIP backbones), ImageNet's when it has none, for hf-hub: names (not looked up offline: "
        "set the numbers) and for models with their own backbone; with data.channels other than 3, auto = the "
        "statistics in the dataset's dataset.toml (`seg check --stats` writes them); "
        "resolved when the preset loads, so a run's preset.toml and its checkpoints record the numbers",
    )
    std: tuple[float, ...] | Literal["auto"] = opt(
        "auto", "per-channel std of input pixels in [0, 1]; auto = the backbone's timm pretrained_cfg std, as mean"
    )
    prior: Literal["none", "mask"] = opt(
        "none",
        "temporal prior for video: mask = the network takes one more input channel, the previous frame's mask "
        "(trained from still images with a perturbed copy of the ground truth; `seg infer` feeds each video frame "
        "the mask predicted for the one before; a still image gets an empty prior); docs/inference.md",
    )


@dataclass(frozen=True)
class LossConfig:
    """What is minimised: a weighted sum of loss terms. A term's own options go in its table, e.g.
    `[loss.focal]` with `gamma = 3.0` (on the command line `loss.focal.gamma=3`); see the tables below."""

    terms: tuple[str, ...] = opt(("ce",), "losses summed, by registry name (tables below)")
    term_weights: tuple[float, ...] = opt((), "weight of each term, same length as terms; empty = 1.0 each")
    class_weights: tuple[float, ...] | str = opt(
        (), "per-class weights, or a TOML file written by `seg class-weights`; empty = unweighted"
    )
    tables: tuple[tuple[str, Any], ...] = field(
        default=(),
        metadata={"doc": "the [loss.<term>] tables given, as (term, options) sorted by term", "tables": _loss_options},
    )

    def options_for(self, term: str) -> Any | None:
        """The options dataclass of ``term``'s table, or None when there is none. A loaded preset has a
        table for every term in ``terms`` (the defaults filled in), so its resolved form records them."""
        return dict(self.tables).get(term)


@dataclass(frozen=True)
class OptimConfig:
    """The optimiser."""

    name: Literal["adamw", "adam", "sgd", "padam"] = opt(
        "adamw", "optimiser; padam = partially adaptive momentum (Chen & Gu 2018), AMSGrad with v^partial"
    )
    lr: float = opt(1e-3, "peak learning rate", minimum=0.0)
    weight_decay: float = opt(1e-4, "decoupled (AdamW) or L2 (SGD, Adam, Padam) weight decay", minimum=0.0)
    momentum: float = opt(0.9, "SGD momentum", minimum=0.0, maximum=1.0)
    nesterov: bool = opt(False, "SGD Nesterov momentum")
    betas: tuple[float, ...] = opt((0.9, 0.999), "Adam/AdamW/Padam betas [beta1, beta2]")
    partial: float = opt(
        0.125, "Padam's exponent p: step m / v_max^p (0.5 = AMSGrad, 0 = SGD momentum)", minimum=0.0, maximum=0.5
    )
    backbone_lr_mult: float = opt(
        1.0, "learning-rate multiplier of the timm backbone relative to decoder and heads", minimum=0.0
    )
    head_lr_mult: float = opt(
        1.0,
        "learning-rate multiplier of the model's head: everything outside the timm backbone for decoders on one "
        "(mmseg's decode and auxiliary heads), the fusion module and output heads for bisenetv1 (CoinCheung's "
        "10x set), the segmentation and aux heads for bisenetv2/ddrnet23_slim, the classifier for enet; the "
        "schedule multiplies every group alike, so the head's floor is schedule.min_lr times this",
        minimum=0.0,
    )
    no_decay_norm_bias: bool = opt(True, "no weight decay on normalisation layers and biases")
    scale_lr_with_batch: Literal["none", "linear", "sqrt"] = opt(
        "none",
        "scale the lr schedule (lr and min_lr) by data.batch_size / optim.lr_batch_size (linear) or its square "
        "root (sqrt), for a batch other than the recipe's; none = lr as given, whatever the batch or GPU count",
    )
    lr_batch_size: int = opt(
        0, "the global batch optim.lr was tuned for (needed by scale_lr_with_batch; 0 = not given)", minimum=0
    )


@dataclass(frozen=True)
class ScheduleConfig:
    """The learning-rate schedule, stepped every iteration."""

    name: Literal["poly", "cosine", "onecycle", "step", "constant"] = opt("poly", "lr schedule over training progress")
    power: float = opt(0.9, "poly exponent: lr = peak * (1 - t)^power", minimum=0.0)
    min_lr: float = opt(0.0, "learning rate at the end of poly/cosine/onecycle", minimum=0.0)
    warmup_iters: int = opt(0, "linear warmup length in iterations (onecycle uses pct_start instead)", minimum=0)
    warmup_fraction: float = opt(
        0.0,
        "linear warmup as a fraction of the run (0.05 = the first 5% of the steps, or of the time under "
        "train.time_budget); multiplies with warmup_iters when both are set",
        minimum=0.0,
        maximum=0.5,
    )
    warmup_factor: float = opt(0.1, "lr at the start of warmup, as a fraction of the peak", minimum=0.0)
    pct_start: float = opt(0.3, "onecycle: fraction of training spent ramping up", minimum=0.0, maximum=1.0)
    milestones: tuple[float, ...] = opt((0.6, 0.9), "step: fractions of training at which lr is multiplied by gamma")
    gamma: float = opt(0.1, "step: lr multiplier at each milestone", minimum=0.0)


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation (paired: masks use nearest-neighbour, pad with ignore_index)."""

    scale: tuple[float, ...] = opt(
        (0.5, 2.0), "random rescale range [min, max]: of the image's own size, or of augment.resize_to when set"
    )
    resize_to: tuple[int, ...] = opt(
        (),
        "[long, short]: rescale to a fixed target scale as mmseg's RandomResize(scale, ratio_range=augment.scale, "
        "keep_ratio=True): the target times a ratio drawn from augment.scale, the image fitted inside it keeping its "
        "aspect ratio; empty = augment.scale is relative to each image's own size",
    )
    crop_size: tuple[int, ...] = opt((512, 512), "random crop [height, width]; padded when larger")
    cat_max_ratio: float = opt(
        1.0,
        "redraw the crop (up to 10 times, mmseg RandomCrop) while one class covers this share or more of its "
        "labelled pixels (ignore_index excluded); 1 = off, mmseg's recipes use 0.75",
        minimum=0.0,
        maximum=1.0,
    )
    hflip: float = opt(0.5, "probability of a horizontal flip", minimum=0.0, maximum=1.0)
    vflip: float = opt(
        0.0,
        "probability of a vertical flip (for images without an up: microscopy, aerial and satellite)",
        minimum=0.0,
        maximum=1.0,
    )
    rot90: float = opt(
        0.0,
        "probability of a rotation by 1, 2 or 3 quarter turns, each as likely (a crop that is not square turns "
        "only by a half turn, so that its size stays); 0.75 with hflip 0.5 draws each of the 8 flips and quarter "
        "turns alike, for images without an up",
        minimum=0.0,
        maximum=1.0,
    )
    elastic: float = opt(
        0.0,
        "probability of an elastic deformation of the crop as in U-Net (Ronneberger et al. 2015, section 3.1): "
        "random displacements on a coarse 3x3 grid, interpolated bicubically to every pixel; for few training "
        "images of deformable tissue. 0 = off",
        minimum=0.0,
        maximum=1.0,
    )
    elastic_std: float = opt(
        10.0, "elastic: standard deviation of the coarse grid's displacements in pixels (the paper's 10)", minimum=0.0
    )
    brightness: float = opt(0.2, "colour jitter: max relative brightness change", minimum=0.0)
    contrast: float = opt(0.2, "colour jitter: max relative contrast change", minimum=0.0)
    saturation: float = opt(0.2, "colour jitter: max relative saturation change", minimum=0.0)
    hue: float = opt(0.0, "colour jitter: max hue shift as a fraction of the hue circle", minimum=0.0, maximum=0.5)


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation: train the preset's model (the student) against a frozen teacher's outputs, through
    the loss terms kd and cwd (docs/distill.md)."""

    teacher: str = opt(
        "",
        "segcli weights (a .safetensors file, seg convert-ckpt output included) or a run directory (its best "
        "weights) of the teacher: any model whose classes are the dataset's by name, in any order; it runs frozen "
        "in eval mode on each training batch; empty = no distillation",
    )


@dataclass(frozen=True)
class TrainConfig:
    """The training loop and where its run directory goes."""

    epochs: int = opt(10, "passes over the training split", minimum=1)
    iters: int = opt(0, "if > 0: train exactly this many iterations instead of `epochs`", minimum=0)
    time_budget: str = opt(
        "",
        "train for this wall time (e.g. 90s, 15m, 1h30m): the schedule follows elapsed time, the last "
        "step lands at the budget with lr annealed, then a final validation runs; empty = off. Set on the "
        "command line it replaces the preset's epochs/iters (and the reverse); both in one file is an error",
    )
    auto: bool = opt(
        False,
        "with train.time_budget: probe the step time at a few crop sizes and batch sizes first, then choose "
        "augment.crop_size, data.batch_size, optim.lr and the schedule for the budget (docs/budget.md)",
    )
    auto_rules: tuple[str, ...] = opt(
        (),
        "with train.auto: the rules that fit the recipe to the training labels' statistics (logged at the start; "
        f"docs/budget.md): {', '.join(AUTO_RULES)}; thin = objects a few pixels wide (median width <= "
        "8 px) get no rescaling jitter (augment.scale = [1, 1]), crops at native resolution and, where the model "
        "has it, model.full_res (logits at stride 1); rare = more than two classes, some under 1% of the labelled "
        "pixels: a Dice term next to CE and 1.5x the optim.lr; empty = none (the default here; budget_scratch "
        "turns both on, where each measured a win: docs/budget.md)",
    )
    average: Literal["none", "ema", "swa"] = opt(
        "none",
        "average the weights over the last part of the run (train.average_from on): ema (decay 0.99) or swa (the "
        "plain mean of every step's weights); at the end the averaged weights replace the trained ones when they "
        "score higher on the val subsample (the full val split without a time budget), both scores logged",
    )
    average_from: float = opt(
        0.75,
        "train.average starts at this fraction of the run (of the steps, or of the time under train.time_budget)",
        minimum=0.0,
        maximum=0.99,
    )
    device: str = opt("auto", "auto, cpu, cuda, cuda:N or mps")
    amp: Literal["auto", "none", "bf16", "fp16"] = opt(
        "auto",
        "autocast precision; auto = bf16 where the CPU or GPU supports it natively, else fp16 on CUDA, else none",
    )
    channels_last: bool = opt(True, "use the channels_last memory format (faster convolutions on CPU and GPU)")
    seed: int = opt(0, "seed for weights, shuffling and augmentation")
    deterministic: bool = opt(False, "use deterministic algorithms (slower, bitwise repeatable)")
    grad_clip: float = opt(0.0, "clip the gradient norm to this value (0 = off)", minimum=0.0)
    accumulate: int = opt(1, "gradient accumulation: optimiser step every N batches", minimum=1)
    ema: float = opt(
        0.0,
        "EMA decay of the weights, e.g. 0.999 (0 = off); saved as weights/ema.safetensors",
        minimum=0.0,
        maximum=1.0,
    )
    patience: int = opt(0, "early stopping: stop after N validations without improvement (0 = off)", minimum=0)
    sync_bn: bool = opt(True, "under torchrun on CUDA, synchronise BatchNorm statistics across GPUs")
    compile: bool = opt(False, "torch.compile the model (opt-in; first iterations are slow)")
    val_every: int = opt(1, "validate every N epochs (the last epoch is always validated)", minimum=1)
    val_every_iters: int = opt(
        0,
        "validate every N iterations instead (0 = use val_every); the epoch's metrics row keeps the epoch's "
        "last validation, and the end of the run is always validated",
        minimum=0,
    )
    save_every: int = opt(
        0,
        "also checkpoint every N iterations inside an epoch (0 = at epoch ends only); a resumed run continues "
        "from the next batch",
        minimum=0,
    )
    save_min_seconds: float = opt(
        60.0,
        "at least this many seconds between two mid-epoch checkpoints (epoch ends and the final save always write)",
        minimum=0.0,
    )
    monitor: str = opt(
        "mIoU", f"validation metric that picks weights/best.safetensors (higher is better): {', '.join(METRIC_KEYS)}"
    )
    out_dir: str = opt("runs", "parent of run directories: <out_dir>/<name>/<N>")
    name: str = opt("", "run name; empty = the preset file's stem")
    threads: int = opt(0, "torch intra-op threads on CPU (0 = torch's default)", minimum=0)
    devices: int = opt(
        1,
        "processes `seg train` starts on this machine through torch.distributed.run (GPUs, or CPU processes with "
        "gloo); ignored under torchrun; `--devices N` on the command line wins (and is needed on --resume)",
        minimum=1,
    )
    log_every: int = opt(
        10,
        "every N iterations: read the loss from the device (the NaN check; under torchrun with a time budget, the "
        "ranks' agreement to stop) and write a progress line (loss, lr, speed, ETA, memory) to log.txt; the loop "
        "does not wait on the device in between",
        minimum=1,
    )
    plots: bool = opt(True, "draw curves, confusion matrix and sample predictions into plots/ after each validation")
    plots_backend: Literal["auto", "matplotlib", "opencv"] = opt(
        "auto", "how plots/ are drawn: auto = matplotlib when installed (the `plots` extra), else OpenCV"
    )
    loggers: tuple[str, ...] = opt(
        ("csv",),
        "where metrics go besides log.txt: csv (metrics.csv, always written), tensorboard (<run>/tensorboard/, the "
        "`tensorboard` extra), wandb (Weights & Biases, the `wandb` extra; WANDB_MODE and keys from the environment)",
    )
    distill: DistillConfig = field(
        default_factory=DistillConfig, metadata={"doc": "knowledge distillation from a frozen teacher: [train.distill]"}
    )

    @functools.cached_property
    def time_budget_seconds(self) -> float | None:
        """``time_budget`` in seconds, or None when it is off: parsed once (validation's read parses and checks
        it; every later read is the stored number)."""
        return parse_duration(self.time_budget) if self.time_budget else None


@dataclass(frozen=True)
class CrfConfig:
    """Dense CRF refinement of the softmax (Krähenbühl & Koltun, NIPS 2011) after the network, as DeepLab does it;
    the defaults are DeepLab v1's DeepLab-CRF-LargeFOV settings (Chen et al., ICLR 2015: w2 = 3 and theta_gamma =
    3 fixed, w1, theta_alpha, theta_beta cross-validated on PASCAL VOC val), tuned for 0-255 colour on VOC images."""

    enabled: bool = opt(
        False, "refine `seg eval` / `seg infer` predictions with the dense CRF (`--crf`); training's validation never"
    )
    iterations: int = opt(10, "mean-field iterations (10 in DeepLab v1 and v2)", minimum=1, maximum=1000)
    bi_w: float = opt(
        4.0,
        "w1, the bilateral (appearance) kernel's weight: DeepLab v1 LargeFOV 4; DeepLab v2 ResNet-101 4",
        minimum=0.0,
    )
    bi_xy_std: float = opt(
        121.0,
        "theta_alpha, the bilateral kernel's position standard deviation in pixels: DeepLab v1 LargeFOV 121; "
        "DeepLab v2 ResNet-101 67",
        minimum=0.01,
    )
    bi_rgb_std: float = opt(
        5.0,
        "theta_beta, the bilateral kernel's colour standard deviation in the image's units (0-255 for 8-bit): "
        "DeepLab v1 LargeFOV 5; DeepLab v2 ResNet-101 3",
        minimum=0.01,
    )
    pos_w: float = opt(3.0, "w2, the Gaussian (smoothness) kernel's weight: 3 in DeepLab v1 and v2", minimum=0.0)
    pos_xy_std: float = opt(
        3.0,
        "theta_gamma, the Gaussian kernel's standard deviation in pixels: DeepLab v1 3; DeepLab v2 ResNet-101 1",
        minimum=0.01,
    )


@dataclass(frozen=True)
class EvalConfig:
    """Validation, `seg eval` and `seg infer`."""

    size: tuple[int, ...] = opt((), "resize inputs to [height, width] before the model; empty = native size")
    keep_ratio: tuple[int, ...] = opt(
        (), "fit inputs inside [long, short] keeping the aspect ratio (mmseg keep_ratio); eval.size wins when set"
    )
    slide: bool = opt(False, "predict by sliding windows of eval.tile every eval.stride, logits averaged on overlaps")
    tile: tuple[int, ...] = opt((512, 512), "sliding-window size [height, width]")
    stride: tuple[int, ...] = opt((341, 341), "sliding-window step [height, width], at most the tile")
    tta: bool = opt(False, "test-time augmentation: eval.tta_scales (and flips), softmax probabilities averaged")
    tta_scales: tuple[float, ...] = opt((0.5, 0.75, 1.0, 1.25, 1.5), "TTA scale factors (mmseg aug_test)")
    tta_flip: bool = opt(True, "TTA also predicts the horizontally flipped image")
    batch_size: int = opt(4, "images per evaluation batch", minimum=1, maximum=65536)
    absent: Literal["nan", "zero", "one"] = opt(
        "nan", "IoU of a class absent from both prediction and ground truth (nan = left out of the mean)"
    )
    crf: CrfConfig = field(
        default_factory=CrfConfig, metadata={"doc": "dense CRF refinement after the network: [eval.crf] (`--crf`)"}
    )


@dataclass(frozen=True)
class MetaConfig:
    """Where the recipe comes from and what its source reports: `seg presets list` shows them, training ignores them."""

    source: str = opt("", "the recipe's source: repository URL and config name, or paper")
    reported_miou: float = opt(
        0.0, "the mIoU (percent) the source reports for this recipe; 0 = none reported", minimum=0.0, maximum=100.0
    )
    protocol: str = opt(
        "", "how reported_miou was measured: split, single- or multi-scale, whole image / slide / crop, flip"
    )
    notes: str = opt("", "anything else: departures from the source, other reported figures")


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
    meta: MetaConfig = field(default_factory=MetaConfig, metadata={"doc": MetaConfig.__doc__})
