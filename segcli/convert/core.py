"""`seg convert-ckpt`: a foreign or raw checkpoint → a self-describing segcli weights file (or a plain
state dict), with every key accounted for: renamed by a map or ``--rename``, dropped on purpose, or an error.
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
from segcli.data.format import DatasetInfo, make_info, read_dataset_info
from segcli.errors import CheckpointError, UserError
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


def _parse_rename(items: list[str] | tuple[str, ...]) -> list[tuple[re.Pattern[str], str]]:
    out = []
    for item in items:
        if "=" not in item:
            raise UserError(f"--rename {item!r}: expected REGEX=REPLACEMENT, e.g. '^backbone\\.=net.encoder.body.'")
        pat, repl = item.split("=", 1)
        out.append((_compile(pat, "--rename"), repl))
    return out


def _compile(pattern: str, option: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise UserError(f"{option} {pattern!r}: not a valid regular expression ({e})") from None


def _target(
    check: str | None, km: KeyMap | None, inferred: dict[str, Any], backbone: str | None
) -> tuple[Preset, DatasetInfo | None] | None:
    """The preset whose model the weights must fit, and the dataset info of a --check weights file."""
    from segcli.config.load import load_preset

    if check:
        if check.endswith(".safetensors"):
            from segcli.core.checkpoint import load_weights

            _, meta = load_weights(check)
            info = make_info(meta.dataset or "converted", meta.classes, [list(c) for c in meta.palette])
            return meta.preset, dataclasses.replace(info, ignore_index=meta.ignore_index)
        return load_preset(check).preset, None
    if km is None:
        return None
    model = {**km.model, **inferred}
    if backbone:
        model["backbone"] = backbone
    elif km.needs_backbone:
        raise UserError(
            f"{km.name} checkpoints do not record their encoder: give --backbone NAME (the timm name, "
            "e.g. resnet18 for smp's tu-resnet18 or resnet18)"
        )
    overrides = [f"model.{k}={v}" for k, v in model.items()]
    return load_preset(None, overrides).preset, None


def _classes(
    classes: list[str] | None,
    num_classes: int | None,
    data: Path | None,
    info: DatasetInfo | None,
    inferred: int | None,
) -> DatasetInfo:
    """The dataset description the output carries: flags, then --data, then --check, then the weights."""
    if classes:
        return make_info("converted", classes)
    if num_classes:
        return make_info("converted", [f"class_{i}" for i in range(num_classes)])
    if data is not None:
        return read_dataset_info(data)
    if info is not None:
        return info
    if inferred:
        return make_info("converted", [f"class_{i}" for i in range(inferred)])
    raise UserError("cannot tell the number of classes: give --classes a,b,c, --num-classes N or --data DIR")


def convert(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    source: str | None = None,
    key: str | None = None,
    rename: list[str] | tuple[str, ...] = (),
    drop: list[str] | tuple[str, ...] = (),
    strip: bool = False,
    half: bool = False,
    dry_run: bool = False,
    check: str | None = None,
    backbone: str | None = None,
    classes: list[str] | None = None,
    num_classes: int | None = None,
    data: str | os.PathLike | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    to: str = "segcli",
    overwrite: bool = False,
) -> ConvertReport:
    """Convert ``src`` into ``out``; see the module docstring. Raises CheckpointError on any unaccounted key."""
    from segcli.core.factory import model_from_preset

    src, out = Path(src), Path(out)
    if to not in ("segcli", "pth"):
        raise UserError(f"--to {to!r}: expected segcli or pth")
    if to == "segcli" and out.suffix != ".safetensors":
        raise UserError(f"{out}: a segcli weights file ends in .safetensors (or pass --to pth)")
    if out.exists() and not overwrite and not dry_run:
        raise UserError(f"{out} exists; pass --overwrite to replace it")
    drops = [_compile(p, "--drop") for p in drop]
    renames = _parse_rename(rename)
    data_path = Path(data) if data is not None else None

    un = unwrap(read_checkpoint(src), key=key, strip=strip)
    report = ConvertReport(str(src), str(out), to, dry_run=dry_run)
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
            raise CheckpointError(f"--rename: two keys become {new!r}")
        sd[new] = v

    km = get_map(source) if source else detect(sd)
    inferred = None
    options: dict[str, Any] = {}
    if km is not None:
        report.key_map = km.name
        inferred = km.num_classes(sd)
        options = km.infer(sd) if km.infer is not None else {}
        mapped, unmapped, dropped = km.apply(sd)
        if unmapped:
            shown = ", ".join(unmapped[:8]) + (", ..." if len(unmapped) > 8 else "")
            raise CheckpointError(
                f"{len(unmapped)} keys that map {km.name} does not know: {shown}; "
                "remove them with --drop REGEX if the model does not need them"
            )
        report.dropped += dropped
        report.renamed += len(mapped)
        sd = mapped

    target = _target(check, km, options, backbone)
    if target is None:
        if to == "segcli":
            raise UserError(
                "a segcli weights file needs a model to fit: give --from SOURCE (see --list-maps) or "
                "--check PRESET_OR_WEIGHTS, or write a plain state dict with --to pth"
            )
        info = None
        preset = None
    else:
        preset, check_info = target
        info = _classes(classes, num_classes, data_path, check_info, inferred)
        cfg = dataclasses.replace(
            preset.model,
            pretrained=False,
            pretrained_file="",
            mean=tuple(mean) if mean else preset.model.mean,
            std=tuple(std) if std else preset.model.std,
        )
        data_cfg = dataclasses.replace(preset.data, root=str(data_path)) if data_path else preset.data
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
        if not report.ok and not dry_run:
            raise CheckpointError(_diff_message(report, check or (km.name if km else "")))
        if report.ok:
            model.load_state_dict(sd, strict=True)
    if half:
        sd = {k: v.half() if v.is_floating_point() and not _FILLED.search(k) else v for k, v in sd.items()}
    sd = {k: v.detach().contiguous() for k, v in sd.items()}
    report.tensors = len(sd)
    report.dtype = ", ".join(sorted({str(v.dtype).replace("torch.", "") for v in sd.values()}))
    if dry_run:
        return report
    if to == "pth":
        atomic_write(out, lambda p: torch.save(sd, p))
    else:
        from safetensors.torch import save_file

        from segcli.core.checkpoint import weights_metadata

        meta = weights_metadata(preset, info)
        meta["converted_from"] = f"{src.name}" + (f" ({km.name})" if km else "")
        atomic_write(out, lambda p: save_file(sd, str(p), metadata=meta), durable=True)
    report.written = True
    return report


def _diff_message(r: ConvertReport, against: str) -> str:
    """One line naming the first few keys of each kind that do not fit."""
    parts = []
    for label, keys in (("missing", r.missing), ("unexpected", r.unexpected), ("shape-mismatched", r.mismatched)):
        if keys:
            parts.append(f"{len(keys)} {label} ({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''})")
    return (
        f"the weights do not fit the model of {against or 'the target'} ({r.model}): {'; '.join(parts)}; "
        "see them all with --dry-run, map them with --rename REGEX=REPL or remove them with --drop REGEX"
    )
