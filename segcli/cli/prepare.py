"""`seg prepare NAME ...`: convert a dataset into the segcli format (one sub-command per dataset)."""

from __future__ import annotations

from pathlib import Path

import typer

from segcli.cli._common import JsonOpt, err, out, print_json, table

prepare_app = typer.Typer(
    help="Convert a dataset into the segcli format (images/, masks/, dataset.toml).",
    no_args_is_help=True,
)


def show_summary(root: Path, as_json: bool, extra: dict | None = None) -> None:
    """Print images per split and pixel share per class of a prepared dataset."""
    from segcli.data.stats import dataset_summary

    summary = dataset_summary(root)
    if extra:
        summary.update(extra)
    if as_json:
        print_json(summary)
        return
    out.print(
        table(
            f"{summary['name']}: images per split", ["split", "images"], [[s, n] for s, n in summary["images"].items()]
        )
    )
    share = summary["pixel_share"]
    out.print(
        table("pixel share per class (all splits, ignore excluded)", ["class", "share"], [[c, share[c]] for c in share])
    )
    out.print(f"dataset written to [bold]{root}[/]")


@prepare_app.command("shapes")
def shapes(
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder to write the dataset to."),
    train: int = typer.Option(300, help="Number of training images."),
    val: int = typer.Option(100, help="Number of validation images."),
    size: int = typer.Option(128, help="Image side length in pixels."),
    seed: int = typer.Option(0, help="Random seed (same seed, same dataset)."),
    force: bool = typer.Option(False, "--force", help="Regenerate files that already exist."),
    as_json: bool = JsonOpt,
) -> None:
    """Built-in synthetic dataset of textured shapes (5 classes, some ignore pixels)."""
    from segcli.data.prepare.shapes import prepare_shapes

    with err.status("generating shapes..."):
        res = prepare_shapes(out_dir, train=train, val=val, size=size, seed=seed, force=force)
    if res.skipped and not as_json:
        err.print(f"{out_dir}: already prepared, nothing to do (--force regenerates)")
    show_summary(res.root, as_json, {"skipped": res.skipped})


# Options shared by the converters of downloaded datasets.
SrcArg = typer.Argument(..., help="What you downloaded: the archive(s) (.zip/.tar/.tgz) or the extracted folder(s).")
OutOpt = typer.Option(..., "--out", "-o", help="Folder to write the dataset to.")
ForceOpt = typer.Option(False, "--force", help="Redo samples already written (and accept changed settings).")
LinkOpt = typer.Option(False, "--link", help="Hard-link (else symlink) unchanged images instead of copying them.")
WorkersOpt = typer.Option(1, "--workers", "-j", min=1, help="Worker processes.")


def _finish(res, as_json: bool) -> None:  # noqa: ANN001 - a PrepareResult
    if res.written == 0 and not as_json:
        err.print(f"{res.root}: already prepared, nothing to do (--force redoes it)")
    show_summary(res.root, as_json, res.summary_extra())


@prepare_app.command("cityscapes")
def cityscapes(
    src: list[Path] = SrcArg,
    out_dir: Path = OutOpt,
    coarse: bool = typer.Option(False, "--coarse", help="Add the train_extra split from gtCoarse."),
    force: bool = ForceOpt,
    link: bool = LinkOpt,
    workers: int = WorkersOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Cityscapes: leftImg8bit + gtFine (zips or folders) → 19 trainId classes, other ids ignored."""
    from segcli.data.prepare.cityscapes import prepare_cityscapes

    res = prepare_cityscapes(src, out_dir, coarse=coarse, force=force, link=link, workers=workers, progress=True)
    _finish(res, as_json)


@prepare_app.command("ade20k")
def ade20k(
    src: list[Path] = SrcArg,
    out_dir: Path = OutOpt,
    force: bool = ForceOpt,
    link: bool = LinkOpt,
    workers: int = WorkersOpt,
    as_json: bool = JsonOpt,
) -> None:
    """ADE20K (ADEChallengeData2016.zip or folder) → 150 classes; 0 ("other") → ignore."""
    from segcli.data.prepare.ade20k import prepare_ade20k

    _finish(prepare_ade20k(src, out_dir, force=force, link=link, workers=workers, progress=True), as_json)


@prepare_app.command("folder")
def folder(
    src: list[Path] = typer.Argument(
        ..., help="IMAGES_DIR MASKS_DIR, or one folder/archive holding both (see --images/--masks)."
    ),
    out_dir: Path = OutOpt,
    name: str = typer.Option("folder", "--name", help="Dataset name written to dataset.toml."),
    images: str = typer.Option(None, "--images", help="Images subfolder inside a single SRC (default: auto)."),
    masks: str = typer.Option(None, "--masks", help="Masks subfolder inside a single SRC (default: auto)."),
    image_suffix: str = typer.Option("", help="Suffix removed from image stems before pairing (e.g. _img)."),
    mask_suffix: str = typer.Option("", help="Suffix removed from mask stems before pairing (e.g. _gt, _mask)."),
    classes: str = typer.Option(None, "--classes", help="Class names in id order: a,b,c."),
    classes_file: Path = typer.Option(None, "--classes-file", help="File with one class name per line."),
    colors: Path = typer.Option(
        None, "--colors", help="RGB masks: table file of 'r,g,b,name' lines in id order (name 'ignore' = void)."
    ),
    binary: bool = typer.Option(False, "--binary", help="0/255 masks → 0/1 (background, foreground)."),
    ignore_index: int = typer.Option(255, "--ignore-index", help="Mask value of void pixels."),
    split_lists: str = typer.Option(
        None, "--split-lists", help="Splits from list files: train=train.txt,val=val.txt (one id per line)."
    ),
    val_ratio: float = typer.Option(0.2, "--val-ratio", help="Without --split-lists: share of samples for val."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random train/val split."),
    force: bool = ForceOpt,
    link: bool = LinkOpt,
    workers: int = WorkersOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Any images folder + masks folder: id, palette, RGB-colour (--colors) or 0/255 (--binary) masks."""
    from segcli.data.prepare.folder import parse_split_lists, prepare_folder, read_class_names

    res = prepare_folder(
        src,
        out_dir,
        name=name,
        images_dir=images,
        masks_dir=masks,
        image_suffix=image_suffix,
        mask_suffix=mask_suffix,
        classes=read_class_names(classes, classes_file),
        colors=colors,
        binary=binary,
        ignore_index=ignore_index,
        split_lists=parse_split_lists(split_lists),
        val_ratio=val_ratio,
        seed=seed,
        force=force,
        link=link,
        workers=workers,
        progress=True,
    )
    _finish(res, as_json)


def _simple_command(name: str, target: str, doc: str) -> None:
    """Register `seg prepare NAME SRC... --out DIR` for a converter taking only the common options.

    ``target`` is ``module:function`` under ``segcli.data.prepare`` (imported when the command runs).
    """

    def command(
        src: list[Path] = SrcArg,
        out_dir: Path = OutOpt,
        force: bool = ForceOpt,
        link: bool = LinkOpt,
        workers: int = WorkersOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        import importlib

        module, func = target.split(":")
        fn = getattr(importlib.import_module(f"segcli.data.prepare.{module}"), func)
        _finish(fn(src, out_dir, force=force, link=link, workers=workers, progress=True), as_json)

    command.__doc__ = doc
    prepare_app.command(name)(command)


_simple_command("voc", "voc:prepare_voc", "PASCAL VOC 2012 (VOCtrainval_11-May-2012.tar or folder) → 21 classes.")
_simple_command("loveda", "loveda:prepare_loveda", "LoveDA (Train.zip, Val.zip or folders): raw 1-7 → 0-6, 0 → ignore.")
_simple_command(
    "coco-stuff",
    "coco_stuff:prepare_coco_stuff",
    "COCO-Stuff 164k (stuffthingmaps + COCO images) or 10k (.mat, needs the extra segcli\\[mat]) → 171 classes.",
)
_simple_command(
    "voc-aug",
    "voc_aug:prepare_voc_aug",
    "VOC 2012 + SBD benchmark.tgz → train_aug (10,582) and val (1,449); SBD .mat needs the extra segcli\\[mat].",
)
_simple_command("lip", "lip:prepare_lip", "Look Into Person (TrainVal images + parsing annotations) → 20 classes.")


@prepare_app.command("mapillary")
def mapillary(
    src: list[Path] = SrcArg,
    out_dir: Path = OutOpt,
    version: str = typer.Option("1.2", "--version", help="Label version: 1.2 (65 classes) or 2.0."),
    force: bool = ForceOpt,
    link: bool = LinkOpt,
    workers: int = WorkersOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Mapillary Vistas v1.2/v2.0: labels → ids by the dataset's config_v*.json table."""
    from segcli.data.prepare.mapillary import prepare_mapillary

    res = prepare_mapillary(src, out_dir, version=version, force=force, link=link, workers=workers, progress=True)
    _finish(res, as_json)


@prepare_app.command("camvid")
def camvid(
    src: list[Path] = SrcArg,
    out_dir: Path = OutOpt,
    split_lists: str = typer.Option(
        None, "--split-lists", help="Original layout only: train=train.txt,val=val.txt,test=test.txt (frame ids)."
    ),
    val_ratio: float = typer.Option(0.2, "--val-ratio", help="Original layout without lists: share for val."),
    seed: int = typer.Option(0, "--seed", help="Seed of that random split."),
    force: bool = ForceOpt,
    link: bool = LinkOpt,
    workers: int = WorkersOpt,
    as_json: bool = JsonOpt,
) -> None:
    """CamVid, SegNet layout (11 classes) or original 32-class colour labels merged into those 11."""
    from segcli.data.prepare.camvid import prepare_camvid
    from segcli.data.prepare.folder import parse_split_lists

    res = prepare_camvid(
        src,
        out_dir,
        split_lists=parse_split_lists(split_lists),
        val_ratio=val_ratio,
        seed=seed,
        force=force,
        link=link,
        workers=workers,
        progress=True,
    )
    _finish(res, as_json)


def _face_command(name: str, target: str, doc: str) -> None:
    """Register a face-parsing converter: common options plus a seeded split or split lists."""

    def command(
        src: list[Path] = SrcArg,
        out_dir: Path = OutOpt,
        split_lists: str = typer.Option(None, "--split-lists", help="train=train.txt,val=val.txt (ids per line)."),
        val_ratio: float = typer.Option(0.1, "--val-ratio", help="Without --split-lists: share of samples for val."),
        seed: int = typer.Option(0, "--seed", help="Seed of the random split."),
        force: bool = ForceOpt,
        link: bool = LinkOpt,
        workers: int = WorkersOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        from segcli.data.prepare import faces
        from segcli.data.prepare.folder import parse_split_lists

        res = getattr(faces, target)(
            src,
            out_dir,
            split_lists=parse_split_lists(split_lists),
            val_ratio=val_ratio,
            seed=seed,
            force=force,
            link=link,
            workers=workers,
            progress=True,
        )
        _finish(res, as_json)

    command.__doc__ = doc
    prepare_app.command(name)(command)


_face_command(
    "facesynthetics", "prepare_facesynthetics", "Microsoft FaceSynthetics (<id>.png + <id>_seg.png) → 19 classes."
)
_face_command(
    "celebamask-hq",
    "prepare_celebamask_hq",
    "CelebAMask-HQ: per-part masks merged into 19 classes, images resized to 512 px.",
)


def register(app: typer.Typer) -> None:
    app.add_typer(prepare_app, name="prepare")
