"""The model list of the docs, generated from the model registry so it never drifts.

One row per registered model: its paper and reference implementation (``@MODELS.register(..., paper=...,
reference=...)``), whether it uses a timm backbone or its own, its ONNX export mode, and the bundled presets
that train it with the figure their source reports. It fills two marked blocks::

    docs/models.md   <!-- model-table:begin ... -->  the table  <!-- model-table:end -->
    README.md        <!-- models:begin ... -->       one line   <!-- models:end -->

    python -m segcli.report.catalog            # print the table
    python -m segcli.report.catalog --write    # rewrite both blocks (after adding or changing a model)
    python -m segcli.report.catalog --check    # exit 1 when either block differs from the registry

The export mode is found by running the model, not declared: one forward pass on the meta device (no memory,
no compute; on the CPU at a small size when an op has no meta kernel) records the operators that cannot take a
symbolic height and width in an ONNX graph (:data:`FIXED_SIZE_OPS`). A model that runs one exports at a fixed
size (``seg export`` says why); the others export with dynamic batch, height and width.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from segcli.models import MODELS, supported_options

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "models.md"
README = ROOT / "README.md"
COMMAND = "python -m segcli.report.catalog --write"
TABLE_MARKERS = ("<!-- model-table:begin", "<!-- model-table:end -->")
README_MARKERS = ("<!-- models:begin", "<!-- models:end -->")
PROBE_BACKBONE = "resnet18"  # the backbone of the export probe, for models that take one
PROBE_SIZE = 128  # a multiple of every model's input multiple (64 for ddrnet23_slim)

# aten operator → (the layer as users know it, why an ONNX graph with it needs a fixed input size)
FIXED_SIZE_OPS = {
    "_adaptive_avg_pool2d": ("AdaptiveAvgPool2d", "its bins need a known input size"),
    "adaptive_max_pool2d": ("AdaptiveMaxPool2d", "its bins need a known input size"),
    "max_unpool2d": ("max_unpool2d", "its output size cannot be symbolic"),
}


class _OpRecorder(TorchDispatchMode):
    """Records the calls of :data:`FIXED_SIZE_OPS` (operator name, and the output size of adaptive pooling)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 - torch's protocol
        op = func.overloadpacket.__name__
        if op in FIXED_SIZE_OPS:
            size = tuple(int(s) for s in args[1]) if op.startswith(("_adaptive", "adaptive")) else ()
            self.calls.append((op, size))
        return func(*args, **(kwargs or {}))


def _fixed_size_calls(name: str, backbone: str) -> list[tuple[str, tuple[int, ...]]]:
    """The :data:`FIXED_SIZE_OPS` calls of one eval-mode forward pass of ``name`` (3 classes)."""
    options = supported_options(name, {"backbone": backbone})
    error: Exception | None = None
    for device in ("meta", "cpu"):
        try:
            with torch.device(device):
                net = MODELS.get(name)(3, **options).eval()
            recorder = _OpRecorder()
            with torch.no_grad(), recorder:
                net(torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE, device=device))
            return recorder.calls
        except Exception as e:  # noqa: BLE001 - e.g. an op without a meta kernel: run it for real
            error = e
    raise RuntimeError(
        f"model {name!r} did not run at {PROBE_SIZE}x{PROBE_SIZE} on meta or CPU: {type(error).__name__}: {error}"
    ) from error


def export_note(name: str, backbone: str = PROBE_BACKBONE) -> str:
    """Why ``name`` exports to ONNX at a fixed size only, or "" when it exports with dynamic sizes.

    Adaptive pooling to a single bin (a global pool) does not count: it is a mean over any size.
    """
    layers: dict[str, list[str]] = {}
    for op, size in _fixed_size_calls(name, backbone):
        if size and all(s == 1 for s in size):
            continue
        bins = "x".join(map(str, size)) if size and len(set(size)) > 1 else (str(size[0]) if size else "")
        found = layers.setdefault(op, [])
        if bins and bins not in found:
            found.append(bins)
    parts = []
    for op, bins in layers.items():
        layer, why = FIXED_SIZE_OPS[op]
        parts.append(f"{layer} ({', '.join(bins)} bins: {why})" if bins else f"{layer} ({why})")
    return "; ".join(parts)


@dataclass(frozen=True)
class PresetFigure:
    """A bundled preset that trains a model, and the mIoU its source reports (0 = none)."""

    name: str
    reported_miou: float
    source: str


def presets_by_model() -> dict[str, list[PresetFigure]]:
    """The bundled presets grouped by their ``[model] name`` (``extends`` merged; files they name not needed)."""
    from segcli.config.load import _read_with_extends, list_presets, preset_meta
    from segcli.config.schema import ModelConfig

    default = ModelConfig().name
    found: dict[str, list[PresetFigure]] = {}
    for path in list_presets():
        model = _read_with_extends(path, {}).get("model", {})
        meta = preset_meta(path)
        name = model.get("name", default) if isinstance(model, dict) else default
        found.setdefault(name, []).append(PresetFigure(path.stem, meta.reported_miou, meta.source))
    return found


@dataclass(frozen=True)
class CatalogRow:
    """What the docs say about one registered model."""

    name: str
    paper: str
    reference: str
    backbone: str  # "timm" (model.backbone) or "own"
    export: str  # "dynamic", or "fixed: <why>"
    presets: tuple[PresetFigure, ...]


def catalog_rows() -> list[CatalogRow]:
    """One row per registered model, in the registry's (alphabetical) order."""
    presets = presets_by_model()
    rows = []
    for name in MODELS.names():
        info = MODELS.info(name)
        note = export_note(name)
        rows.append(
            CatalogRow(
                name=name,
                paper=info.paper,
                reference=info.reference,
                backbone="timm" if info.timm_encoder else "own",
                export=f"fixed: {note}" if note else "dynamic",
                presets=tuple(presets.get(name, ())),
            )
        )
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|") if text else "-"


def _preset_cell(presets: tuple[PresetFigure, ...]) -> str:
    items = []
    for p in presets:
        figure = ""
        if p.reported_miou:
            value = str(p.reported_miou)  # as the preset writes it: 77.8, 91.0
            url = p.source.split()[0] if p.source.startswith(("http://", "https://")) else ""
            figure = f" [{value}]({url})" if url else f" {value}"
        items.append(f"`{p.name}`{figure}")
    return "; ".join(items) if items else "-"


def render_table(rows: list[CatalogRow] | None = None) -> str:
    """The Markdown table of docs/models.md (without its markers)."""
    rows = catalog_rows() if rows is None else rows
    lines = [
        "| model | paper | reference implementation | backbone | ONNX export | bundled presets (reported mIoU) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = [f"`{r.name}`", _cell(r.paper), _cell(r.reference), r.backbone, _cell(r.export)]
        lines.append("| " + " | ".join([*cells, _preset_cell(r.presets)]) + " |")
    return "\n".join(lines) + "\n"


def render_readme_line(rows: list[CatalogRow] | None = None) -> str:
    """The README's model paragraph (without its markers), wrapped at 120 columns."""
    rows = catalog_rows() if rows is None else rows
    timm = ", ".join(r.name for r in rows if r.backbone == "timm")
    own = ", ".join(r.name for r in rows if r.backbone == "own")
    text = (
        "Models (`model.name`; the paper, reference implementation, ONNX export mode and bundled presets of each "
        f"are in [docs/models.md](docs/models.md)): on any timm backbone with `features_only` as `model.backbone`: "
        f"{timm}" + (f"; with their own backbone: {own}." if own else ".")
    )
    return textwrap.fill(text, width=120, break_long_words=False, break_on_hyphens=False) + "\n"


def _replace_block(text: str, markers: tuple[str, str], body: str, path: Path) -> str:
    """``text`` with the lines between the marker lines replaced by ``body``."""
    begin, end = markers
    pattern = re.compile(rf"(^{re.escape(begin)}[^\n]*\n)(.*?)(^{re.escape(end)}[^\n]*$)", re.S | re.M)
    if not pattern.search(text):
        raise ValueError(f"{path}: no block between a line starting {begin!r} and a line {end!r}")
    return pattern.sub(lambda m: m.group(1) + body + m.group(3), text, count=1)


def generated_files(rows: list[CatalogRow] | None = None) -> dict[Path, str]:
    """docs/models.md and README.md as they should read, their other text kept as it is."""
    rows = catalog_rows() if rows is None else rows
    return {
        DOC: _replace_block(DOC.read_text(encoding="utf-8"), TABLE_MARKERS, render_table(rows), DOC),
        README: _replace_block(README.read_text(encoding="utf-8"), README_MARKERS, render_readme_line(rows), README),
    }


def stale_files() -> list[Path]:
    """The generated files whose blocks differ from what the registry gives."""
    return [p for p, text in generated_files().items() if p.read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the generated blocks of docs/models.md and README")
    mode.add_argument("--check", action="store_true", help="exit 1 when a generated block is out of date")
    args = ap.parse_args(argv)
    if not (args.write or args.check):
        sys.stdout.write(render_table())
        return 0
    files = generated_files()
    stale = [p for p, text in files.items() if p.read_text(encoding="utf-8") != text]
    for p in stale:
        if args.write:
            p.write_text(files[p], encoding="utf-8")
        print(f"{'rewrote' if args.write else 'out of date'}: {p.relative_to(ROOT)}")
    if args.check and stale:
        print(f"regenerate with: {COMMAND}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
