"""``segcli.Model``: a model loaded once and used from Python, in memory.

``Model(source)`` opens a run directory (its best weights), a segcli ``.safetensors`` file or an exported
``.onnx``/TorchScript graph through the loader `seg infer` uses (:func:`segcli.infer.predictor.open_model`), or
builds a fresh, untrained model from a preset. :meth:`Model.predict` runs the prediction core on paths,
folders or RGB arrays and returns :class:`Prediction` objects holding the mask (and probabilities on request)
in memory; nothing is written unless :meth:`Prediction.save` is called. :meth:`Model.predict_tiled` writes an image too
big to hold band by band into tiled TIFFs (`seg infer --tiled`). :meth:`Model.evaluate` and
:meth:`Model.export` are `seg eval` and `seg export` (:func:`segcli.infer.evaluate`,
:func:`segcli.infer.export_model`) on the model's weights.

Arrays are RGB, uint8, (H, W, 3), as the engine reads every image (``cv2.imread`` gives BGR: convert with
``cv2.cvtColor(img, cv2.COLOR_BGR2RGB)``); a grey (H, W) array is taken as three equal channels. A model of
N channels (``data.channels``) takes (H, W, N) arrays as :func:`segcli.data.io.read_image` gives them: uint8, or
float32 in [0, 255] units (uint16 arrays are divided by 257).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from segcli.core.checkpoint import CheckpointMeta, save_weights
from segcli.data.format import DatasetInfo, default_palette
from segcli.errors import DataError, UserError, arg
from segcli.infer.backends import ExportedModel
from segcli.infer.predict_core import prediction_device, ready_for_prediction
from segcli.infer.predictor import (
    INFER_BATCH,
    Clip,
    OutputOptions,
    _frames,
    _Writer,
    expand_inputs,
    has_prior,
    is_video,
    open_model,
    overlay,
    predict_arrays,
    read_input,
)
from segcli.infer.protocol import PredictionProtocol, ProtocolChoices, resolve_protocol
from segcli.infer.tiled import predict_tiled, tiled_paths

Image = str | os.PathLike | np.ndarray  # one image: a path or an RGB array


@dataclass(frozen=True, eq=False)
class Prediction:
    """One image's prediction, in memory.

    ``mask``: (H, W) class ids (uint8 up to 256 classes, else int32) at the image's own size; ``probs``: (C, H, W)
    float32 class probabilities when asked for (``predict(..., probs=True)``), else None; ``image``: the RGB
    image predicted; ``name``: the file stem (``image<i>`` for an array), used by :meth:`save`.
    """

    mask: np.ndarray
    image: np.ndarray
    meta: CheckpointMeta
    name: str
    probs: np.ndarray | None = None
    source: Path | None = None

    @property
    def classes(self) -> tuple[str, ...]:
        return self.meta.classes

    @property
    def palette(self) -> np.ndarray:
        """(C, 3) uint8 RGB colour of each class."""
        return np.array(self.meta.palette, dtype=np.uint8)

    def overlay(self, alpha: float = 0.5, alpha_bg: float | None = None) -> np.ndarray:
        """The image with the class colours blended in (RGB uint8), as `seg infer`'s overlays
        (``alpha_bg``: the opacity of class 0, 0 leaves it untinted)."""
        return overlay(self.image, self.mask, self.palette, alpha, alpha_bg)

    def save(self, folder: str | os.PathLike, *, overwrite: bool = False, name: str | None = None) -> dict[str, Path]:
        """Write ``masks/<name>.png`` (palette PNG: viewers show colours, readers get the ids) and
        ``overlays/<name>.jpg`` under ``folder``, as `seg infer --out folder` does, each atomically. Existing
        files are an error unless ``overwrite``. Returns the paths by kind (mask, overlay)."""
        writer = _Writer(self.meta, OutputOptions(save=("mask", "overlay"), overwrite=overwrite))
        files = writer.paths(Path(folder), name or self.name)
        clash = [str(f) for f in files.values() if f.exists()]
        if clash and not overwrite:
            raise UserError(f"{clash[0]} exists; pass {arg('overwrite')}=True to replace it, or another folder")
        for f in files.values():
            f.parent.mkdir(parents=True, exist_ok=True)
        writer.write(self.image, self.mask, None, files, False)
        return files


class Model:
    """A segmentation model loaded once for Python use.

    ``source``: a run directory (``runs/quickstart/1``: its best weights, else last), a folder of runs (its
    latest), a segcli ``.safetensors`` file, an exported ``.onnx``/``.torchscript`` graph, or a preset (a bundled
    name or a ``.toml`` path) for a fresh, untrained model of that preset (``overrides`` apply to it; its classes
    come from the preset's dataset, or ``classes``). ``device``: auto, cpu, cuda, cuda:N or mps. ``protocol``: the
    test protocol's defaults for every call (each None keeps the preset's ``eval.*``).
    """

    def __init__(
        self,
        source: str | os.PathLike,
        device: str = "auto",
        *,
        protocol: ProtocolChoices | None = None,
        overrides: Sequence[str] = (),
        classes: Sequence[str] | None = None,
    ) -> None:
        self.asked = protocol or ProtocolChoices()  # as given: evaluate keeps the preset's batch unless it says
        self.choices = self.asked
        if self.choices.batch_size is None:
            self.choices = replace(self.choices, batch_size=INFER_BATCH)
        self.weights: Path | None = None
        if _is_preset(source):
            self.device = prediction_device(device, self.choices)
            self.net, self.meta = _fresh(source, overrides, classes, self.device)
            self.protocol = ready_for_prediction(self.net, self.meta, self.device, self.choices)
        else:
            if overrides or classes:
                raise UserError(f"{arg('overrides')} and {arg('classes')} are for a fresh model from a preset")
            opened = open_model(source, device, self.choices)
            self.weights, self.device, self.net, self.meta, self.protocol = (
                opened.weights,
                opened.device,
                opened.model,
                opened.meta,
                opened.protocol,
            )

    def __repr__(self) -> str:
        source = self.weights or f"fresh {self.meta.preset.model.name}"
        return f"Model({source}, {self.num_classes} classes, {self.device})"

    @property
    def classes(self) -> tuple[str, ...]:
        return self.meta.classes

    @property
    def num_classes(self) -> int:
        return self.meta.num_classes

    def _protocol(self, tta: bool | None, slide: bool | None, size: Sequence[int] | int | None) -> PredictionProtocol:
        if tta is None and slide is None and size is None:
            return self.protocol
        if isinstance(size, int):
            size = (size, size)
        choices = replace(
            self.choices,
            **{k: v for k, v in (("tta", tta), ("slide", slide)) if v is not None},
            **({"size": tuple(size)} if size is not None else {}),
        )
        return resolve_protocol(choices, self.meta.preset, self.device)

    def predict(
        self,
        source: Image | Sequence[Image],
        tta: bool | None = None,
        slide: bool | None = None,
        size: Sequence[int] | int | None = None,
        probs: bool = False,
    ) -> Prediction | list[Prediction]:
        """Predict an image path, an RGB uint8 (H, W, 3) array, a folder, a glob pattern, or a list of these: one
        :class:`Prediction` for one image, a list for a folder, pattern or list. Masks come back at each image's
        own size, from the prediction core `seg infer` uses (same batches, same masks). ``tta``/``slide``: flip
        and multi-scale averaging, sliding windows (None: the preset's ``eval.tta``/``eval.slide``); ``size``:
        resize to (H, W) (or a square) before the model; ``probs``: also the class probabilities."""
        many = isinstance(source, (list, tuple)) or _is_many(source)
        items = _images(source if isinstance(source, (list, tuple)) else [source], self.meta.preset.data.channels)
        proto = self._protocol(tta, slide, size)
        found = predict_arrays(self.net, [im for im, _, _ in items], proto, self.device, probs)
        out = [Prediction(mask, image, self.meta, name, p, src) for (image, name, src), (mask, p) in zip(items, found)]
        return out if many else out[0]

    def predict_video(
        self, path: str | os.PathLike, tta: bool | None = None, slide: bool | None = None, probs: bool = False
    ) -> Iterator[Prediction]:
        """The frames of a video, predicted in batches as they are decoded: one :class:`Prediction` a frame (named
        ``<stem>_<frame>``), yielded in order, nothing kept or written (`seg infer clip.mp4` writes them). A prior
        model (``model.prior = "mask"``) gets each frame's previous mask, one frame at a time, as `seg infer` does."""
        src = Path(path)
        if not src.is_file():
            raise DataError(f"{src}: no such video file")
        proto = self._protocol(tta, slide, None)
        clip = Clip(has_prior(self.meta), self.num_classes)
        frames = enumerate(_frames(src))
        while batch := list(islice(frames, clip.batch_size(proto))):
            found = predict_arrays(self.net, [f for _, f in batch], proto, self.device, probs, clip)
            for (k, frame), (mask, p) in zip(batch, found):
                yield Prediction(mask, frame, self.meta, f"{src.stem}_{k:06d}", p, src)

    def predict_tiled(
        self,
        source: str | os.PathLike,
        out: str | os.PathLike,
        *,
        save: Sequence[str] = ("mask",),
        overwrite: bool = False,
    ) -> dict[str, Any]:
        """An image too big to hold (a gigapixel scan, a GeoTIFF orthophoto) predicted band by band, as `seg infer
        --tiled` does (:mod:`segcli.infer.tiled`): its class ids written to tiled TIFFs under ``out`` as ``save``
        asks (``mask``: ``masks/<stem>.tif`` with the class palette; ``ids``: ``ids/<stem>.tif`` grey), the input's
        georeferencing tags copied, nothing image-sized held. Returns `seg infer`'s entry for it (the paths by
        kind, the class shares, how it was read, predicted and written). Existing files are an error unless
        ``overwrite``."""
        src = Path(source)
        if not src.is_file():
            raise DataError(f"{src}: no such image file")
        files = tiled_paths(Path(out), src.stem, tuple(save))
        clash = [str(f) for f in files.values() if f.exists()]
        if clash and not overwrite:
            raise UserError(f"{clash[0]} exists; pass {arg('overwrite')}=True to replace it, or another folder")
        return predict_tiled(self.net, src, files, self.protocol, self.meta)

    def __call__(self, source: Image | Sequence[Image], **options: Any) -> Prediction | list[Prediction]:
        """``model(x)`` is ``model.predict(x)``."""
        return self.predict(source, **options)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model's weights and metadata as a segcli ``.safetensors`` file (a fresh model included)."""
        if isinstance(self.net, ExportedModel):
            raise UserError(f"{self.weights}: an exported graph cannot be saved as segcli weights")
        info = DatasetInfo(self.meta.dataset, self.meta.classes, self.meta.palette, self.meta.ignore_index)
        meta = self.meta
        return save_weights(path, self.net, meta.preset, info, epoch=meta.epoch, metrics=meta.metrics, data=meta.data)

    def evaluate(
        self,
        data: str | os.PathLike | None = None,
        split: str = "val",
        *,
        protocol: ProtocolChoices | None = None,
        report: str | os.PathLike | None = None,
        workers: int | str = "auto",
    ) -> dict[str, Any]:
        """`seg eval` of this model on a dataset's split (default: the preset's ``data.root``): mIoU, per-class
        IoU, pixel accuracy, the confusion matrix... The JSON report (and confusion-matrix picture) is written
        only when ``report`` names a ``.json`` file or a folder; otherwise it goes to a temporary folder that is
        removed. The weights are read again from their file (a fresh model is saved to a temporary one)."""
        from segcli.infer.evaluator import EvalOptions, evaluate

        choices = self.asked if protocol is None else protocol
        with tempfile.TemporaryDirectory(prefix="segcli-eval-") as tmp:
            weights = self.weights or self.save(Path(tmp) / "model.safetensors")
            options = EvalOptions(out=report if report is not None else tmp, workers=workers)
            result = evaluate(weights, data, split, device=str(self.device), protocol=choices, options=options)
            metrics = dict(result.metrics)
        if report is None:
            metrics.pop("confusion_png", None)
            metrics.pop("reliability_png", None)
        else:
            metrics["report"] = str(result.report)
        return metrics

    def export(self, fmt: str = "onnx", out: str | os.PathLike | None = None, **options: Any) -> Path:
        """`seg export`: an ONNX (``fmt="onnx"``) or TorchScript graph with its metadata, verified against
        PyTorch; returns its path. ``out`` defaults to the run's ``export/`` folder (a fresh model needs one);
        ``options`` are :class:`segcli.infer.ExportOptions`' fields (``opset``, ``bake``, ``overwrite``...)."""
        from segcli.infer.exporter import ExportOptions, export_model

        if self.weights is None and out is None:
            raise UserError(f"a fresh model has no run to export into; give {arg('out')}")
        with tempfile.TemporaryDirectory(prefix="segcli-export-") as tmp:
            weights = self.weights or self.save(Path(tmp) / "model.safetensors")
            return export_model(weights, fmt, out, str(self.device), ExportOptions(**options)).path


def _is_preset(source: str | os.PathLike) -> bool:
    """A preset (a bundled name or a .toml file) rather than a run or weights: what ``Model(source)`` builds fresh.
    A path that does not exist is a preset only when it has no folder and no weights suffix (a missing run
    directory or weights file is then reported as such, not as an unknown preset)."""
    p = Path(source)
    if p.suffix.lower() == ".toml":
        return True
    return (
        not p.exists()
        and len(p.parts) == 1
        and p.suffix.lower() not in (".safetensors", ".onnx", ".xml", ".ts", ".torchscript")
    )


def _is_many(source: Any) -> bool:
    """A folder or a glob pattern (several images), as opposed to one image."""
    if isinstance(source, np.ndarray):
        return False
    return Path(source).is_dir() or (not Path(source).exists() and any(ch in str(source) for ch in "*?["))


def _images(sources: Sequence[Image], channels: int = 3) -> list[tuple[np.ndarray, str, Path | None]]:
    """(image, name, source path or None) of each array, image file, folder or pattern: RGB uint8, or
    ``channels`` channels for an N-channel model."""
    found: list[tuple[np.ndarray, str, Path | None]] = []
    for i, src in enumerate(sources):
        if isinstance(src, np.ndarray):
            found.append((_rgb(src, i) if channels == 3 else _channels(src, i, channels), f"image{i}", None))
            continue
        for path in expand_inputs([os.fspath(src)]):
            if is_video(path):
                raise DataError(f"{path}: a video; predict its frames with model.predict_video(path)")
            found.append((read_input(path, channels), path.stem, path))
    if not found:
        raise UserError(f"{arg('source')}: no images given")
    return found


def _rgb(array: np.ndarray, index: int) -> np.ndarray:
    """An (H, W, 3) uint8 RGB array (a grey (H, W) one as three channels), or a clear error."""
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or min(array.shape[:2]) < 1:
        raise UserError(
            f"{arg('source')}[{index}]: an array of shape {array.shape} and dtype {array.dtype}; give RGB uint8 "
            "(H, W, 3) (an image read with cv2.imread is BGR: cv2.cvtColor(img, cv2.COLOR_BGR2RGB))"
        )
    return np.ascontiguousarray(array)


def _channels(array: np.ndarray, index: int, channels: int) -> np.ndarray:
    """An (H, W, channels) array for an N-channel model, uint8 or float32 in [0, 255] units (uint16 / 257), or a
    clear error naming the count the model takes."""
    if array.ndim == 2 and channels == 1:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] != channels or min(array.shape[:2]) < 1:
        raise UserError(
            f"{arg('source')}[{index}]: an array of shape {array.shape}; the model takes {channels}-channel images "
            f"(H, W, {channels})"
        )
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 257.0
    if array.dtype != np.uint8:
        return np.ascontiguousarray(array, dtype=np.float32)
    return np.ascontiguousarray(array)


def _fresh(
    preset_name: str | os.PathLike, overrides: Sequence[str], classes: Sequence[str] | None, device: torch.device
) -> tuple[torch.nn.Module, CheckpointMeta]:
    """An untrained model of a preset, and the metadata a checkpoint of it would carry (classes from ``classes``,
    else the preset's dataset)."""
    from segcli.config.load import load_preset
    from segcli.core.factory import model_from_preset
    from segcli.data.format import read_dataset_info

    preset = load_preset(preset_name, list(overrides)).preset
    if classes is not None:
        info = DatasetInfo("", tuple(classes), tuple(tuple(c) for c in default_palette(len(classes))))
    elif (Path(preset.data.root) / "dataset.toml").is_file():
        info = read_dataset_info(preset.data.root)
    else:
        raise UserError(
            f"{preset_name}: a fresh model needs its classes; data.root {preset.data.root} is not a dataset, so give "
            f"{arg('classes')} (e.g. classes=['background', 'object'])"
        )
    model = model_from_preset(preset.model, info.num_classes).to(device)
    m = preset.model
    meta = CheckpointMeta(info.classes, info.palette, info.ignore_index, tuple(m.mean), tuple(m.std), preset, info.name)
    return model, meta
