"""`seg convert-ckpt`: a foreign or raw checkpoint → a self-describing segcli weights file (or a plain
state dict), with every key accounted for: renamed by a map or ``rename``, dropped on purpose, or an error.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from segcli.config.schema import Preset
from segcli.convert.loader import read_checkpoint, unwrap
from segcli.convert.maps import KeyMap, detect, get_map
from segcli.core.rundir import RunDir, resolve_weights
from segcli.data.format import DatasetInfo, make_info, read_dataset_info
from segcli.errors import CheckpointError, UserError, arg
from segcli.io_utils import atomic_write

# Keys segcli derives from the metadata or that carry no learned value: filled from the built model.
_FILLED = re.compile(r"^(mean|std)$|\.num_batches_tracked$")


@dataclass
class ConvertReport:
    """What a conversion did, key by key (``ok`` False: a dry run found problems)."""

    source: str
    out: str
    to: str
    key_map: str = ""
    unwrapped: list[str] = field(default_factory=list)
    left_behind: list[str] = field(default_factory=list)
    stripped_prefixes: dict[str, int] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    renamed: int = 0
    filled: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    tensors: int = 0
    dtype: str = ""
    model: str = ""
    classes: list[str] = field(default_factory=list)
    dry_run: bool = False
    written: bool = False

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ok": self.ok}


@dataclass(frozen=True)
class ConvertOptions:
    """How the checkpoint's keys are read and renamed.

    ``source``: the key map of the source library (``library:model``; default: detected from the keys);
    ``key``: the entry holding the weights (default: state_dict, model, module, ema); ``rename``:
    ``REGEX=REPLACEMENT`` rules applied to every key, in order; ``drop``: regexes of keys to remove;
    ``strip``: keep the model weights only (drop optimizer, scheduler, epoch...).
    """

    source: str | None = None
    key: str | None = None
    rename: tuple[str, ...] | list[str] = ()
    drop: tuple[str, ...] | list[str] = ()
    strip: bool = False


@dataclass(frozen=True)
class TargetOptions:
    """The model and dataset the weights must fit, and what the output records.

    ``check``: a preset, segcli weights or run directory whose model the result must fit (default: the key map's
    model);
    ``backbone``: the timm encoder where the source does not record it; ``classes``, else ``num_classes``, else
    ``data`` (a segcli dataset: classes, palette, ignore_index), else ``check``'s weights, else the weights
    themselves: the classes; ``mean``/``std``: the input normalisation per channel in [0, 1] (default: the
    preset's).
    """

    check: str | None = None
    backbone: str | None = None
    classes: list[str] | tuple[str, ...] | None = None
    num_classes: int | None = None
    data: str | os.PathLike | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


def _parse_rename(items: list[str] | tuple[str, ...]) -> list[tuple[re.Pattern[str], str]]:
    out = []
    for item in items:
        if "=" not in item:
            raise UserError(
                f"{arg('rename')} {item!r}: expected REGEX=REPLACEMENT, e.g. '^backbone\\.=net.encoder.body.'"
            )
        pat, repl = item.split("=", 1)
        out.append((_compile(pat, arg("rename")), repl))
    return out


def _compile(pattern: str, option: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise UserError(f"{option} {pattern!r}: not a valid regular expression ({e})") from None


def _target(
    fit: TargetOptions, km: KeyMap | None, inferred: dict[str, Any]
) -> tuple[Preset, DatasetInfo | None] | None:
    """The preset whose model the weights must fit, and the dataset info of a ``check`` weights file."""
    from segcli.config.load import load_preset

    if fit.check:
        check = Path(fit.check)
        if check.is_dir() and (check / "preset.toml").is_file() and RunDir(check).best_weights() is None:
            return load_preset(check / "preset.toml").preset, None  # a run that has no weights yet: its preset
        if fit.check.endswith(".safetensors") or check.is_dir():  # weights, or a run directory like every command
            from segcli.core.checkpoint import load_weights

            _, meta = load_weights(resolve_weights(check))
            info = make_info(meta.dataset or "converted", meta.classes, [list(c) for c in meta.palette])
            return meta.preset, dataclasses.replace(info, ignore_index=meta.ignore_index)
        return load_preset(fit.check).preset, None
    if km is None:
        return None
    model = {**km.model, **inferred}
    if fit.backbone:
        model["backbone"] = fit.backbone
    elif km.needs_backbone:
        raise UserError(
            f"{km.name} checkpoints do not record their encoder: give {arg('backbone')} NAME (the timm name, "
            "e.g. resnet18 for smp's tu-resnet18 or resnet18)"
        )
    overrides = [f"model.{k}={v}" for k, v in model.items()]
    return load_preset(None, overrides).preset, None


def _classes(fit: TargetOptions, info: DatasetInfo | None, inferred: int | None) -> DatasetInfo:
    """The dataset description the output carries: ``classes``, ``num_classes``, ``data``, then ``check``'s
    weights, then the weights themselves."""
    if fit.classes:
        return make_info("converted", list(fit.classes))
    if fit.num_classes:
        return make_info("converted", [f"class_{i}" for i in range(fit.num_classes)])
    if fit.data is not None:
        return read_dataset_info(Path(fit.data))
    if info is not None:
        return info
    if inferred:
        return make_info("converted", [f"class_{i}" for i in range(inferred)])
    raise UserError(
        f"cannot tell the number of classes: give {arg('classes')} a,b,c, {arg('num_classes')} N or {arg('data')} DIR"
    )


def convert(
    src: str | os.PathLike,
    out: str | os.PathLike,
    options: ConvertOptions | None = None,
    target: TargetOptions | None = None,
    *,
    to: str = "segcli",
    half: bool = False,
    dry_run: bool = False,
    overwrite: bool = False,
) -> ConvertReport:
    """Convert ``src`` into ``out`` (segcli weights, or with ``to="pth"`` a plain state dict); see the module
    docstring. ``options``: how the keys are read and renamed; ``target``: the model and classes they must fit;
    ``half``: store floating-point weights as float16; ``dry_run``: report, write nothing. Raises
    CheckpointError on any unaccounted key."""
    src, out = Path(src), Path(out)
    opts, fit = options or ConvertOptions(), target or TargetOptions()
    if to not in ("segcli", "pth"):
        raise UserError(f"{arg('to')} {to!r}: expected segcli or pth")
    if to == "segcli" and out.suffix != ".safetensors":
        raise UserError(f"{out}: a segcli weights file ends in .safetensors (or pass {arg('to')} pth)")
    if out.exists() and not overwrite and not dry_run:
        raise UserError(f"{out} exists; pass {arg('overwrite')} to replace it")
    report = ConvertReport(str(src), str(out), to, dry_run=dry_run)
    sd = _read_keys(src, opts, report)
    km = get_map(opts.source) if opts.source else detect(sd)
    sd, inferred, model_options = _apply_map(sd, km, report)
    fitted = _target(fit, km, model_options)
    if fitted is None and to == "segcli":
        raise UserError(
            f"a segcli weights file needs a model to fit: give {arg('source')} SOURCE (see {arg('list_maps')}) or "
            f"{arg('check')} PRESET_OR_WEIGHTS, or write a plain state dict with {arg('to')} pth"
        )
    preset, info = None, None
    if fitted is not None:
        preset, info = _fit(sd, fitted, fit, inferred, report)
        if not report.ok and not dry_run:
            raise CheckpointError(_diff_message(report, fit.check or (km.name if km else "")))
    if half:
        sd = {k: v.half() if v.is_floating_point() and not _FILLED.search(k) else v for k, v in sd.items()}
    sd = {k: v.detach().contiguous() for k, v in sd.items()}
    report.tensors = len(sd)
    report.dtype = ", ".join(sorted({str(v.dtype).replace("torch.", "") for v in sd.values()}))
    if not dry_run:
        _write(sd, out, (preset, info) if to == "segcli" else None, f"{src.name}" + (f" ({km.name})" if km else ""))
        report.written = True
    return report


def _write(sd: dict[str, torch.Tensor], out: Path, fitted: tuple[Any, DatasetInfo | None] | None, source: str) -> None:
    """``sd`` as segcli weights carrying ``fitted``'s preset and classes, or (None) as a plain state dict."""
    if fitted is None:
        atomic_write(out, lambda p: torch.save(sd, p))
        return
    from safetensors.torch import save_file

    from segcli.core.checkpoint import weights_metadata

    meta = weights_metadata(*fitted)
    meta["converted_from"] = source
    atomic_write(out, lambda p: save_file(sd, str(p), metadata=meta), durable=True)


def _read_keys(src: Path, opts: ConvertOptions, report: ConvertReport) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors, unwrapped, with ``drop`` and ``rename`` applied (recorded in ``report``)."""
    drops = [_compile(p, arg("drop")) for p in opts.drop]
    renames = _parse_rename(opts.rename)
    un = unwrap(read_checkpoint(src), key=opts.key, strip=opts.strip)
    report.unwrapped, report.left_behind, report.stripped_prefixes = un.path, un.left, un.stripped
    report.dropped = list(un.dropped_non_tensor)
    sd: dict[str, torch.Tensor] = {}
    for k, v in un.state.items():
        if any(d.search(k) for d in drops):
            report.dropped.append(k)
            continue
        new = k
        for pat, repl in renames:
            new = pat.sub(repl, new)
        report.renamed += new != k
        if new in sd:
            raise CheckpointError(f"{arg('rename')}: two keys become {new!r}")
        sd[new] = v
    return sd


def _apply_map(
    sd: dict[str, torch.Tensor], km: KeyMap | None, report: ConvertReport
) -> tuple[dict[str, torch.Tensor], int | None, dict[str, Any]]:
    """(state dict in segcli's names, the classes the weights have, model options they imply) by key map ``km``."""
    if km is None:
        return sd, None, {}
    report.key_map = km.name
    inferred = km.num_classes(sd)
    options = km.infer(sd) if km.infer is not None else {}
    mapped, unmapped, dropped = km.apply(sd)
    if unmapped:
        shown = ", ".join(unmapped[:8]) + (", ..." if len(unmapped) > 8 else "")
        raise CheckpointError(
            f"{len(unmapped)} keys that map {km.name} does not know: {shown}; "
            f"remove them with {arg('drop')} REGEX if the model does not need them"
        )
    report.dropped += dropped
    report.renamed += len(mapped)
    return mapped, inferred, options


def _fit(
    sd: dict[str, torch.Tensor],
    fitted: tuple[Preset, DatasetInfo | None],
    fit: TargetOptions,
    inferred: int | None,
    report: ConvertReport,
) -> tuple[Preset, DatasetInfo]:
    """The output's preset and classes, ``sd`` compared with the model they build (key by key, into
    ``report``; the keys segcli derives filled in ``sd``) and loaded into it when everything fits."""
    from segcli.core.factory import model_from_preset

    preset, check_info = fitted
    info = _classes(fit, check_info, inferred)
    cfg = dataclasses.replace(
        preset.model,
        pretrained=False,
        pretrained_file="",
        mean=tuple(fit.mean) if fit.mean else preset.model.mean,
        std=tuple(fit.std) if fit.std else preset.model.std,
    )
    data_cfg = dataclasses.replace(preset.data, root=str(Path(fit.data))) if fit.data is not None else preset.data
    preset = dataclasses.replace(preset, model=cfg, data=data_cfg)
    model = model_from_preset(cfg, info.num_classes)
    own = model.state_dict()
    report.model = f"{cfg.name} ({cfg.backbone}), {info.num_classes} classes"
    report.classes = list(info.classes)
    for k in own:
        if k not in sd and _FILLED.search(k):
            sd[k] = own[k]
            report.filled.append(k)
    report.missing = sorted(set(own) - set(sd))
    report.unexpected = sorted(set(sd) - set(own))
    report.mismatched = [
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in sd and sd[k].shape != own[k].shape
    ]
    if report.ok:
        model.load_state_dict(sd, strict=True)
    return preset, info


def _diff_message(r: ConvertReport, against: str) -> str:
    """One line naming the first few keys of each kind that do not fit."""
    parts = []
    for label, keys in (("missing", r.missing), ("unexpected", r.unexpected), ("shape-mismatched", r.mismatched)):
        if keys:
            parts.append(f"{len(keys)} {label} ({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''})")
    return (
        f"the weights do not fit the model of {against or 'the target'} ({r.model}): {'; '.join(parts)}; "
        f"see them all with {arg('dry_run')}, map them with {arg('rename')} REGEX=REPL or remove them with "
        f"{arg('drop')} REGEX"
    )
