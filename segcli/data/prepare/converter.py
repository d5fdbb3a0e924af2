"""The converter interface, its registry and the one engine entry point :func:`prepare`.

A :class:`Converter` declares what `seg prepare NAME` needs to know (its help, the downloads it
expects, its options as data) and implements two steps, as TensorFlow Datasets' builders do:
:meth:`Converter.plan` lists the samples per split (with the :class:`DatasetInfo`) from the
downloads, and :meth:`Converter.decode_label` (optionally :meth:`Converter.decode_image`) turns one
sample into an id mask. The framework opens the downloads, checks, writes and validates
(:mod:`segcli.data.prepare.writer`). A converter is registered with :func:`register_converter`;
the CLI builds its command, options and help from this declaration.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from segcli.data.decode import check_ids, decode_ids, lut_map
from segcli.data.format import DatasetInfo
from segcli.data.prepare.fetch import Download, FetchProgress, fetch
from segcli.data.prepare.sources import STAGING, Member, Sources, open_sources, out_is_free
from segcli.data.prepare.writer import Decoding, PrepareResult, Progress, Sample, WriteOptions, run_conversion
from segcli.errors import UserError
from segcli.registry import Registry

SOURCES_HELP = "What you downloaded: the archive(s) (.zip/.tar/.tgz) or the extracted folder(s)."
# Parameters every converter gets from the framework; no converter option may use these names.
RESERVED = frozenset({"converter", "sources", "out", "force", "overwrite", "link", "workers", "progress", "as_json"})


@dataclass(frozen=True)
class Option:
    """One converter option: its Python name, type (int, float, str, bool, Path), default and help.

    The CLI flag is ``--name-with-dashes`` unless ``flag`` is given; ``short`` adds e.g. ``-n``.
    """

    name: str
    type: type
    default: Any
    help: str
    flag: str | None = None
    short: str | None = None
    min: float | None = None

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


@dataclass
class Plan:
    """What a converter found in the downloads: the dataset's info and the samples to write.

    ``params`` is handed to the decode methods (in worker processes: keep it picklable);
    ``settings`` (what changes the output) is stored in ``dataset.toml`` and checked on a re-run.
    """

    info: DatasetInfo
    samples: list[Sample]
    params: Any = None
    settings: dict[str, Any] = field(default_factory=dict)


class Converter:
    """Base class of every `seg prepare` converter; subclasses set the class attributes and
    implement :meth:`plan` and :meth:`decode_label`."""

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    #: The downloads, named with where they are published; "" means the converter reads none.
    expected: ClassVar[str] = ""
    #: The public direct downloads `seg prepare NAME` fetches when given no source (the module's
    #: ``DOWNLOADS`` table); empty for datasets behind a login or without a direct link.
    downloads: ClassVar[tuple[Download, ...]] = ()
    options: ClassVar[tuple[Option, ...]] = ()
    sources_help: ClassVar[str] = SOURCES_HELP
    #: None: the source image is copied as it is; else :meth:`decode_image` gives the image to write.
    image_ext: ClassVar[str | None] = None

    @property
    def takes_sources(self) -> bool:
        return bool(self.expected)

    def expected_for(self, opts: dict[str, Any]) -> str:
        """The EXPECTED text for these options (used in every 'not found' error)."""
        return self.expected

    def fetch_sources(self, opts: dict[str, Any], progress: FetchProgress | None = None) -> list[Path]:
        """The sources to convert when none was given: the verified downloads, fetched into the cache."""
        if not self.downloads:
            raise UserError(
                f"seg prepare {self.name} needs SRC, the files you downloaded (segcli cannot fetch them for you): "
                f"{self.expected_for(opts)}; run `seg prepare {self.name} PATH...` with them"
            )
        return fetch(self.downloads, f"seg prepare {self.name}", progress=progress)

    def want(self, member: str, opts: dict[str, Any]) -> bool:
        """True for tar members :meth:`plan` reads at once (lists, class tables); samples are staged later."""
        return False

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        """List the samples per split and describe the dataset."""
        raise NotImplementedError

    def decode_label(self, srcs: Sources, sample: Sample, params: Any) -> np.ndarray:
        """The id mask of one sample (uint8, or uint16 above 255 classes)."""
        raise NotImplementedError

    def decode_image(self, srcs: Sources, sample: Sample, params: Any) -> np.ndarray:
        """The RGB image to write for one sample (only when :attr:`image_ext` is set)."""
        raise NotImplementedError

    def report(self, result: PrepareResult) -> dict[str, Any]:
        """What the summary adds about the run (written / skipped / linked)."""
        return result.summary_extra()

    def finish(self, result: PrepareResult, opts: dict[str, Any]) -> None:
        """After the dataset is written and checked: what the converter writes beside it (none by default)."""

    def resolve(self, given: dict[str, Any]) -> dict[str, Any]:
        """Every option's value: ``given`` over the defaults; an unknown name is a UserError."""
        known = {o.name: o.default for o in self.options}
        unknown = sorted(set(given) - set(known))
        if unknown:
            valid = ", ".join(known) or "none"
            raise UserError(f"converter {self.name!r} has no option {unknown[0]!r}; its options: {valid}")
        return {**known, **given}


class LutConverter(Converter):
    """A converter whose labels hold raw ids mapped through the table :attr:`lut` (other ids → 255)."""

    lut: ClassVar[dict[int, int]] = {}

    def decode_label(self, srcs: Sources, sample: Sample, params: Any) -> np.ndarray:
        return lut_map(read_ids(srcs, sample.label), self.lut, 255)


CONVERTERS: Registry[Any] = Registry("converter")


def register_converter(cls: type[Converter]) -> type[Converter]:
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    clash = RESERVED & {o.name for o in cls.options}
    if not cls.name or not cls.help or clash:
        raise ValueError(f"converter {cls.__name__}: needs a name and a help line; reserved option names {clash}")
    CONVERTERS.register(cls.name)(cls())
    return cls


def prepare(
    converter: str,
    sources: Iterable[str | os.PathLike] = (),
    out: str | os.PathLike | None = None,
    *,
    write: WriteOptions = WriteOptions(),
    progress: Progress | None = None,
    fetch_progress: FetchProgress | None = None,
    **options: Any,
) -> PrepareResult:
    """Convert ``sources`` with the registered converter ``converter`` into ``out`` (the segcli format).

    With no ``sources``, a converter with public downloads fetches them into the cache first
    (:mod:`segcli.data.prepare.fetch`; ``fetch_progress(file, done, total)`` follows the bytes).
    ``out`` defaults to ``data/<converter>``. ``options`` are the converter's own (see
    ``seg prepare NAME --help``); ``write`` says how (replace, link, workers); ``progress(n, total)`` is called
    with n = 0 first, then once per sample.
    """
    from segcli.data.prepare import converters

    conv: Converter = converters().get(converter)
    opts = conv.resolve(options)
    out = Path(out) if out is not None else Path("data") / converter
    paths = list(sources)
    if conv.takes_sources and not paths:
        out_is_free(out)  # refuse a foreign --out folder before downloading anything
        paths = conv.fetch_sources(opts, fetch_progress)
    existed = Path(out).exists()
    try:
        if conv.takes_sources:
            srcs = open_sources(paths, out, conv.expected_for(opts), lambda n: conv.want(n, opts))
        elif paths:
            raise UserError(f"seg prepare {converter} reads no downloads; got {', '.join(map(str, paths))}")
        else:
            srcs = Sources.none()
        plan = conv.plan(srcs, opts)
    except BaseException:
        _drop_staging(Path(out), existed)
        raise
    decoding = Decoding(
        conv.decode_label, plan.params, conv.decode_image if conv.image_ext else None, conv.image_ext or ".png"
    )
    result = run_conversion(out, plan.info, plan.samples, srcs, decoding, write, plan.settings, progress)
    conv.finish(result, opts)
    return result


def _drop_staging(out: Path, existed: bool) -> None:
    """After a refused download: remove what open_sources unpacked, and ``out`` when it made it."""
    shutil.rmtree(out / STAGING, ignore_errors=True)
    if not existed and out.is_dir() and not any(out.iterdir()):
        out.rmdir()


# ------------------------------------------------------------------------------- label helpers


def read_ids(srcs: Sources, member: Member) -> np.ndarray:
    """A downloaded label holding ids (grey, palette index or equal-channel RGB)."""
    return decode_ids(srcs.read(member), srcs.describe(member))


def decode_checked_ids(srcs: Sources, s: Sample, num_classes: int, dataset: str, ignore: int = 255) -> np.ndarray:
    """A label already stored as ids: values outside [0, num_classes) and ``ignore`` are a DataError."""
    ids = read_ids(srcs, s.label)
    return check_ids(ids, num_classes, ignore, srcs.describe(s.label), dataset).astype(np.uint8)


def by_name(hits: Iterable[tuple[Any, Member]], key: Callable[[Any], Any] = lambda m: m.group(1)) -> dict[Any, Member]:
    """``{key(match): member}`` of :meth:`Sources.find` hits (default key: the first group)."""
    return {key(m): mem for m, mem in hits}
