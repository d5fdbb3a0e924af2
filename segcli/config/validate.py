"""Every check of a preset beyond types and ranges, run once when it loads.

``load_preset`` and ``preset_from_dict`` call :func:`validate_preset`, so ``seg presets show`` and
``seg train`` accept and reject the same presets with the same message, and the engine gets values
it can trust. Each error names the file (or the command line) that set the key, the key and the value.
Only what needs the dataset waits for training: the number of class weights against the classes
(:func:`check_class_weights`).

The model and loss registries (torch, timm) are imported on first use, not with ``segcli.config``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from segcli.config.loggers import logger_problems
from segcli.config.schema import AUTO_RULES, METRIC_KEYS, LossConfig, MetaConfig, ModelConfig, Preset, TrainConfig
from segcli.config.toml_io import load_toml
from segcli.errors import PresetError, UserError
from segcli.extras import missing
from segcli.registry import did_you_mean

CLI = "command line"
DEFAULT_AUX_WEIGHT = 0.4
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def where(origin: Mapping[str, str], dotted: str, default: str = CLI) -> str:
    """Which file (or the command line) set ``dotted`` or a key below it."""
    if dotted in origin:
        return origin[dotted]
    return next((src for k, src in origin.items() if k.startswith(dotted + ".")), default)


def aux_loss_weights(weights: Sequence[float], n_aux: int, model: str = "the model") -> list[float]:
    """The loss weight of each of ``n_aux`` auxiliary outputs from ``model.aux_weights``.

    Empty means 0.4 each; a single value applies to all (and to none); otherwise one value per output.
    """
    ws = [float(w) for w in weights]
    if any(w < 0 for w in ws):
        raise PresetError(f"model.aux_weights = {ws}: weights must be >= 0")
    if len(ws) > 1 and len(ws) != n_aux:
        fix = (
            "remove it" if n_aux == 0 else f"give {n_aux} values, a single value, or none (= {DEFAULT_AUX_WEIGHT} each)"
        )
        raise PresetError(
            f"model.aux_weights has {len(ws)} values but model {model!r} returns {n_aux} auxiliary outputs; {fix}"
        )
    if len(ws) <= 1:
        return [ws[0] if ws else DEFAULT_AUX_WEIGHT] * n_aux
    return ws


def read_class_weights(path: str | Path, dataset: str = "DATASET") -> tuple[float, ...]:
    """The ``weights`` list of a TOML file written by `seg class-weights` (relative to the working directory)."""
    path = Path(path)
    if not path.is_file():
        raise PresetError(
            f"loss.class_weights = {str(path)!r}: file not found; write it with "
            f"`seg class-weights {dataset} --method inv --out {path}` or give a list of weights"
        )
    weights = load_toml(path).get("weights")
    if not isinstance(weights, list) or not all(
        isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights
    ):
        raise PresetError(f"{path}: needs a 'weights' list of numbers (written by `seg class-weights`)")
    if any(w < 0 for w in weights):
        raise PresetError(f"{path}: class weights must be >= 0")
    return tuple(float(w) for w in weights)


def check_class_weights(weights: Sequence[float], num_classes: int, source: str = "loss.class_weights") -> None:
    """The one check that needs the dataset: one weight per class."""
    if len(weights) != num_classes:
        raise PresetError(f"{source}: {len(weights)} class weights given for {num_classes} classes")


def _check_shapes(p: Preset) -> list[tuple[str, str]]:
    """(key, problem) for the list-shaped keys the schema types cannot express."""
    a, e, m = p.augment, p.eval, p.model
    found = []
    if len(a.scale) not in (0, 2) or (len(a.scale) == 2 and not 0 < a.scale[0] <= a.scale[1]):
        found.append(("augment.scale", f"augment.scale = {list(a.scale)} must be [min, max] with 0 < min <= max"))
    if len(a.resize_to) not in (0, 2) or any(v < 1 for v in a.resize_to):
        found.append(("augment.resize_to", f"augment.resize_to = {list(a.resize_to)} must be [] or [long, short] > 0"))
    if a.cat_max_ratio <= 0:
        found.append(("augment.cat_max_ratio", f"augment.cat_max_ratio = {a.cat_max_ratio} must be in (0, 1]"))
    if len(a.crop_size) not in (0, 1, 2) or any(v < 1 for v in a.crop_size):
        found.append(("augment.crop_size", f"augment.crop_size = {list(a.crop_size)} must be [height, width] > 0"))
    if len(e.size) not in (0, 2) or any(v < 1 for v in e.size):
        found.append(("eval.size", f"eval.size = {list(e.size)} must be [] or [height, width]"))
    if len(e.keep_ratio) not in (0, 2) or any(v < 1 for v in e.keep_ratio):
        found.append(("eval.keep_ratio", f"eval.keep_ratio = {list(e.keep_ratio)} must be [] or [long, short] > 0"))
    if len(e.tile) != 2 or any(v < 1 for v in e.tile):
        found.append(("eval.tile", f"eval.tile = {list(e.tile)} must be [height, width] > 0"))
    elif len(e.stride) != 2 or not all(0 < s <= t for s, t in zip(e.stride, e.tile)):
        found.append(("eval.stride", f"eval.stride = {list(e.stride)} must be [height, width] in (0, eval.tile]"))
    if not e.tta_scales or any(v <= 0 for v in e.tta_scales):
        found.append(("eval.tta_scales", f"eval.tta_scales = {list(e.tta_scales)} must be one or more factors > 0"))
    n = p.data.channels
    what = "RGB" if n == 3 else f"one per data.channels = {n}"
    if m.mean != "auto" and len(m.mean) != n:
        found.append(("model.mean", f'model.mean = {list(m.mean)} needs {n} values ({what}, in [0, 1]) or "auto"'))
    if m.std != "auto" and (len(m.std) != n or any(s <= 0 for s in m.std)):
        found.append(("model.std", f'model.std = {list(m.std)} needs {n} values > 0 ({what}, in [0, 1]) or "auto"'))
    return found


def resolve_length(t: TrainConfig, origin: Mapping[str, str] | None = None, default: str = CLI) -> TrainConfig:
    """Decide between a time budget and an explicit ``epochs``/``iters``, which both set the run's length.

    The one given on the command line wins over a preset file's (``seg train quickstart
    train.time_budget=15m`` trains for 15 minutes although quickstart sets ``epochs = 12``); both from
    the same place is a mistake and a PresetError naming both keys. Without ``origin`` (a resolved
    preset from a run or a checkpoint) the budget wins, as it always did. The loser is reset to its
    default, so the resolved preset states one length only.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    explicit = [k for k in ("epochs", "iters") if getattr(t, k) != defaults[k]]
    if not t.time_budget or not explicit:
        return t
    lengths_at_default = {k: defaults[k] for k in explicit}
    if origin is None:
        return dataclasses.replace(t, **lengths_at_default)
    budget_src = where(origin, "train.time_budget", default)
    other_srcs = {where(origin, f"train.{k}", default) for k in explicit}
    if budget_src == CLI and CLI not in other_srcs:
        return dataclasses.replace(t, **lengths_at_default)
    if budget_src != CLI and other_srcs == {CLI}:
        auto = t.auto and where(origin, "train.auto", default) == CLI  # a preset's auto goes with its budget
        return dataclasses.replace(t, time_budget="", auto=auto)
    k = explicit[0]
    raise PresetError(
        f"{budget_src}: train.time_budget = {t.time_budget!r} and train.{k} = {getattr(t, k)} both set the run's "
        f'length; keep one (train.{k}={defaults[k]} is its default, train.time_budget="" turns the budget off)'
    )


def _check_lr_scaling(p: Preset) -> list[tuple[str, str]]:
    o = p.optim
    if o.scale_lr_with_batch != "none" and o.lr_batch_size == 0:
        return [
            (
                "optim.scale_lr_with_batch",
                f"optim.scale_lr_with_batch = {o.scale_lr_with_batch!r} needs optim.lr_batch_size, the global batch "
                f"optim.lr = {o.lr:g} was tuned for (for example optim.lr_batch_size={p.data.batch_size})",
            )
        ]
    return []


def _check_meta(m: MetaConfig) -> list[tuple[str, str]]:
    if m.reported_miou > 0 and not m.protocol.strip():
        return [
            (
                "meta.protocol",
                f"meta.reported_miou = {m.reported_miou:g} needs meta.protocol: say how it was measured (split, "
                "single- or multi-scale, whole image or sliding window, flip)",
            )
        ]
    return []


def _check_train(t: TrainConfig) -> list[tuple[str, str]]:
    found = []
    if t.monitor not in METRIC_KEYS:
        found.append(("train.monitor", f"train.monitor = {t.monitor!r}; choose one of {', '.join(METRIC_KEYS)}"))
    if t.time_budget:
        try:
            t.time_budget_seconds  # noqa: B018 - parsing is the check
        except PresetError as err:
            found.append(("train.time_budget", str(err)))
    if t.auto and not t.time_budget:
        found.append(
            (
                "train.auto",
                "train.auto = true chooses the recipe for a time budget; set train.time_budget too "
                "(e.g. train.time_budget=15m, or seg train --budget 15m PRESET)",
            )
        )
    unknown = [r for r in t.auto_rules if r not in AUTO_RULES]
    if unknown:
        found.append(
            (
                "train.auto_rules",
                f"train.auto_rules: unknown rule {unknown[0]!r}; choose from {', '.join(AUTO_RULES)} (empty = none)",
            )
        )
    if t.val_every_iters and t.val_every != 1:
        found.append(
            (
                "train.val_every_iters",
                f"train.val_every = {t.val_every} and train.val_every_iters = {t.val_every_iters} both set how often "
                "to validate; keep one (train.val_every=1 is its default, train.val_every_iters=0 turns it off)",
            )
        )
    if not _DEVICE.fullmatch(t.device.strip().lower()):
        found.append(("train.device", f"train.device = {t.device!r} is not one of auto, cpu, cuda, cuda:N, mps"))
    return found


def backbone_norm(m: ModelConfig) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean/std the backbone of ``[model]`` was pretrained with, from timm's ``pretrained_cfg``.

    Read from timm's registry of pretrained configs (``timm.models.get_pretrained_cfg``; a tag such as
    ``vit_base_patch16_224.augreg_in21k`` picks that tag's config), never by downloading anything. ImageNet's
    statistics when the model has its own backbone, when timm has no config for the name (``hf-hub:`` names
    cannot be looked up offline: set model.mean/model.std for them) or when the config has no mean/std.
    """
    from segcli.models import IMAGENET_MEAN, IMAGENET_STD, MODELS
    from segcli.models.checks import HUB_PREFIXES

    if m.name not in MODELS or not MODELS.info(m.name).timm_encoder or m.backbone.startswith(HUB_PREFIXES):
        return IMAGENET_MEAN, IMAGENET_STD
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(m.backbone)
    except Exception:  # noqa: BLE001 - an unknown name is reported by models.checks.backbone_problem
        cfg = None
    mean, std = getattr(cfg, "mean", None), getattr(cfg, "std", None)
    if not mean or not std or len(mean) != 3 or len(std) != 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


EXTRA_CHANNEL_MEAN, EXTRA_CHANNEL_STD = 0.5, 0.25  # "auto" for channels beyond RGB without dataset statistics


def channel_norm(
    rgb: tuple[tuple[float, ...], tuple[float, ...]], channels: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """RGB statistics stretched to ``channels``: one channel is grey (the RGB values' average), two are grey and
    an extra channel, more keep RGB and add extra channels (mean 0.5, std 0.25: a guess, where the dataset has no
    statistics of its own)."""
    mean, std = rgb
    if channels == 3:
        return tuple(mean), tuple(std)
    grey = (sum(mean) / 3, sum(std) / 3)
    head_mean, head_std = ((grey[0],), (grey[1],)) if channels < 3 else (tuple(mean), tuple(std))
    extra = channels - len(head_mean)
    return head_mean + (EXTRA_CHANNEL_MEAN,) * extra, head_std + (EXTRA_CHANNEL_STD,) * extra


def dataset_norm(root: str | Path, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The per-channel ``mean``/``std`` that `seg check --stats` (and `seg prepare`) wrote into
    ``<root>/dataset.toml``, when they are there with ``channels`` values each; None otherwise."""
    path = Path(root) / "dataset.toml"
    if not path.is_file():
        return None
    try:
        raw = load_toml(path, error=UserError)
    except UserError:
        return None
    mean, std = raw.get("mean"), raw.get("std")
    if not isinstance(mean, list) or not isinstance(std, list) or len(mean) != channels or len(std) != channels:
        return None
    if not all(isinstance(v, (int, float)) for v in [*mean, *std]) or any(s <= 0 for s in std):
        return None
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def resolve_normalisation(m: ModelConfig, channels: int = 3, data_root: str | Path | None = None) -> ModelConfig:
    """``[model]`` with ``mean``/``std`` = "auto" replaced by numbers (explicit values stay), one per channel.

    RGB (``channels`` = 3): :func:`backbone_norm`'s. Another count: the statistics in ``data_root``'s
    dataset.toml when they are there, else :func:`channel_norm` of the backbone's.
    """
    if m.mean != "auto" and m.std != "auto":
        return m
    norm = dataset_norm(data_root, channels) if channels != 3 and data_root is not None else None
    mean, std = norm or channel_norm(backbone_norm(m), channels)
    return dataclasses.replace(m, mean=mean if m.mean == "auto" else m.mean, std=std if m.std == "auto" else m.std)


def _own_backbone_problems(m: ModelConfig, defaults: ModelConfig) -> list[tuple[str, str]]:
    """A network with its own backbone (bisenetv2, ddrnet23_slim, enet) has no timm backbone to choose or
    initialise: setting ``backbone``, ``pretrained``, ``pretrained_file`` or ``aux_stages`` would be ignored,
    so each is an error instead. (A value equal to the default cannot be told from an unset key.)"""
    found = []
    own = f"model {m.name!r} has its own backbone, not a timm encoder, and trains from scratch"
    if m.backbone != defaults.backbone:
        found.append(("model.backbone", f"model.backbone = {m.backbone!r}: {own}; remove model.backbone"))
    if m.pretrained:
        found.append(
            (
                "model.pretrained",
                f"model.pretrained = true: {own} (segcli has no pretrained weights for it); remove model.pretrained "
                "or pick a model on a timm backbone (`seg models`)",
            )
        )
    if m.pretrained_file:
        found.append(
            (
                "model.pretrained_file",
                f"model.pretrained_file = {m.pretrained_file!r}: {own}; backbone weights cannot be loaded into it, "
                "remove model.pretrained_file",
            )
        )
    if m.aux_stages:
        found.append(
            (
                "model.aux_stages",
                f"model.aux_stages = {list(m.aux_stages)}: {own}; remove aux_stages (its built-in aux heads are "
                "switched by model.builtin_aux)",
            )
        )
    return found


def _check_model(m: ModelConfig, check_files: bool, resuming: bool = False) -> list[tuple[str, str]]:
    from segcli.models import MODELS, model_options
    from segcli.models.checks import backbone_problem, stride_problem
    from segcli.models.necks import neck_problems

    try:
        info = MODELS.info(m.name)
    except UserError as err:
        return [("model.name", f"model.name: {err}")]
    found = []
    defaults = ModelConfig()
    accepted = model_options(m.name)  # a decoder's own keys only mean something to the models that take them
    own = ("neck", "neck_repeats", "full_res")
    rejects = [*info.rejects, *(k for k in own if accepted is not None and k not in accepted)]
    for key in rejects:
        if getattr(m, key) != getattr(defaults, key):
            value = str(getattr(m, key)).lower() if isinstance(getattr(m, key), bool) else repr(getattr(m, key))
            found.append((f"model.{key}", f"model.{key} = {value}: model {m.name!r} does not support it; remove it"))
    if "neck" not in rejects:
        found.extend(neck_problems(m.neck, m.neck_repeats))
    if info.timm_encoder:
        problem = backbone_problem(m.backbone)
        if problem:
            found.append(("model.backbone", problem))
        problem = stride_problem(m.output_stride, m.name)
        if problem:
            found.append(("model.output_stride", problem))
        if check_files and m.pretrained_file and not Path(m.pretrained_file).exists():
            found.append(("model.pretrained_file", f"model.pretrained_file = {m.pretrained_file!r}: file not found"))
    else:
        found.extend(_own_backbone_problems(m, defaults))
    if check_files and not resuming and m.init_from and not Path(m.init_from).is_file():
        found.append(
            (
                "model.init_from",
                f"model.init_from = {m.init_from!r}: file not found; give a segcli .safetensors (a run's "
                "weights/best.safetensors, or the output of seg convert-ckpt)",
            )
        )
    try:
        aux_loss_weights(m.aux_weights, info.aux_outputs(m.builtin_aux, m.aux_stages), m.name)
    except PresetError as err:
        found.append(("model.aux_weights", str(err)))
    return found


def _check_loss(loss: LossConfig, check_files: bool, dataset: str) -> list[tuple[str, str]]:
    from segcli.losses import LOSSES

    if not loss.terms:
        return [("loss.terms", f"loss.terms is empty; name at least one of: {', '.join(LOSSES.names())}")]
    found = []
    for t in loss.terms:
        if t not in LOSSES:
            valid = ", ".join(LOSSES.names())
            found.append(
                ("loss.terms", f"loss.terms: unknown loss {t!r}{did_you_mean(t, LOSSES.names())}; valid: {valid}")
            )
    dupes = sorted({t for t in loss.terms if loss.terms.count(t) > 1})
    if dupes:
        found.append(
            ("loss.terms", f"loss.terms lists {', '.join(dupes)} more than once; list each once and use term_weights")
        )
    if loss.term_weights and len(loss.term_weights) != len(loss.terms):
        found.append(
            (
                "loss.term_weights",
                f"loss.term_weights has {len(loss.term_weights)} values for {len(loss.terms)} loss.terms "
                f"{list(loss.terms)}; give one weight per term or leave it empty",
            )
        )
    if any(w < 0 for w in loss.term_weights):
        found.append(("loss.term_weights", f"loss.term_weights = {list(loss.term_weights)}: weights must be >= 0"))
    cw = loss.class_weights
    if isinstance(cw, str):
        if cw and check_files:
            try:
                read_class_weights(cw, dataset)
            except PresetError as err:
                found.append(("loss.class_weights", str(err)))
    elif any(w < 0 for w in cw):
        found.append(("loss.class_weights", f"loss.class_weights = {list(cw)}: class weights must be >= 0"))
    return found


def _check_distill(p: Preset, check_files: bool) -> list[tuple[str, str]]:
    """A teacher goes with at least one distillation term (kd, cwd) and the reverse; the teacher exists."""
    from segcli.losses import LOSSES

    teacher = p.train.distill.teacher
    terms = [t for t in p.loss.terms if t in LOSSES and LOSSES.info(t).teacher]
    if terms and not teacher:
        return [
            (
                "loss.terms",
                f"loss.terms has {', '.join(terms)}, which compare the model with a teacher: set "
                "train.distill.teacher to its weights file or run directory",
            )
        ]
    if teacher and not terms:
        names = ", ".join(t for t in LOSSES.names() if LOSSES.info(t).teacher)
        return [
            (
                "train.distill.teacher",
                f"train.distill.teacher is set but loss.terms {list(p.loss.terms)} has no distillation term; add one "
                f"of {names} (for example loss.terms=['ce','kd'])",
            )
        ]
    if teacher and check_files and not Path(teacher).exists():
        return [
            (
                "train.distill.teacher",
                f"train.distill.teacher = {teacher!r}: no such weights file or run directory",
            )
        ]
    return []


def _check_extras(t: TrainConfig, check_packages: bool) -> list[tuple[str, str]]:
    """Logger names, and (with ``check_packages``) the packages the loggers and plots backend need."""
    found = [("train.loggers", problem) for problem in logger_problems(t.loggers, check_packages)]
    if check_packages and t.plots and t.plots_backend == "matplotlib":
        problem = missing("matplotlib", "plots", "train.plots_backend = 'matplotlib'", "train.plots_backend=opencv")
        if problem:
            found.append(("train.plots_backend", problem))
    return found


def validate_preset(
    preset: Preset,
    origin: Mapping[str, str] | None = None,
    *,
    check_files: bool = True,
    default: str = "preset",
    resuming: bool = False,
    check_packages: bool | None = None,
) -> None:
    """Raise a PresetError naming the source and key of the first problem in ``preset``.

    ``origin`` maps dotted keys to the file (or "command line") that set them; keys not in it are
    attributed to ``default``. ``check_files=False`` skips the files a preset refers to (class-weights
    and pretrained files) and the packages its loggers and plots need, for presets embedded in checkpoints;
    ``check_packages`` (default: as ``check_files``) decides the packages on their own (shown presets).
    ``resuming``: the run's own state holds the weights, so ``model.init_from`` may have been moved or
    deleted since it started.
    """
    found = [
        *_check_shapes(preset),
        *_check_lr_scaling(preset),
        *_check_train(preset.train),
        *_check_extras(preset.train, check_files if check_packages is None else check_packages),
        *_check_meta(preset.meta),
        *_check_model(preset.model, check_files, resuming),
        *_check_loss(preset.loss, check_files, preset.data.root),
        *_check_distill(preset, check_files),
    ]
    if found:
        key, problem = found[0]
        raise PresetError(f"{where(origin or {}, key, default)}: {problem}")
