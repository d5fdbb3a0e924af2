"""`seg prepare mapillary`: palette and RGB labels, unlabeled, a missing config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from prepare_helpers import (
    fixture_dir,
    rand_rgb,
    read_ids,
    write_jpg,
    write_palette_png,
    write_png,
)

from segcli.data.format import read_dataset_info
from segcli.data.prepare import prepare
from segcli.errors import DataError


def _mapillary_config(path: Path, colors: list[list[int]], n: int) -> Path:
    labels = [
        {"name": f"group--label{i}", "readable": f"Label {i}", "color": colors[i], "evaluate": True}
        for i in range(n - 1)
    ]
    labels.append({"name": "void--unlabeled", "readable": "Unlabeled", "color": [0, 0, 0], "evaluate": False})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"labels": labels}))
    return path


@pytest.mark.parametrize("version,n", [("1.2", 66), ("2.0", 124)])
def test_mapillary_real_palette_and_rgb_labels(tmp_path: Path, version: str, n: int) -> None:
    from PIL import Image

    src = fixture_dir("mmseg", "pseudo_mapillary_dataset")
    label = src / f"v{version}" / "__CRyFzoDOXn6unQ6a3DnQ.png"
    with Image.open(label) as im:
        pal = im.getpalette()
        raw = np.asarray(im).copy()
        rgb = np.asarray(im.convert("RGB")).copy()
    # The label PNG's palette holds the config colours; unused entries get distinct colours.
    colors = [pal[3 * i : 3 * i + 3] for i in range(n - 1)]
    seen = {tuple(c) for i, c in enumerate(colors) if i in set(np.unique(raw).tolist())}
    for i, c in enumerate(colors):
        if i not in set(np.unique(raw).tolist()) and (tuple(c) in seen or c == [0, 0, 0]):
            colors[i] = [i, 255 - i, 7]
        seen.add(tuple(colors[i]))
    cfg = _mapillary_config(tmp_path / "cfg" / f"config_v{version}.json", colors, n)
    res = prepare("mapillary", [src, cfg.parent], tmp_path / "out", version=version)
    assert res.counts == {"train": 1}
    got = read_ids(tmp_path / "out" / "masks" / "train" / label.name)
    np.testing.assert_array_equal(got, raw)  # all used labels are evaluated and come first: ids unchanged
    info = read_dataset_info(tmp_path / "out")
    assert info.num_classes == n - 1 and "Unlabeled" not in info.classes
    # The same label saved as RGB colours maps back through the config colours.
    rgb_src = tmp_path / "rgb"
    write_jpg(rgb_src / "training" / "images" / "x.jpg", np.zeros((*raw.shape, 3), np.uint8))
    write_png(rgb_src / "training" / f"v{version}" / "labels" / "x.png", rgb)
    prepare("mapillary", [rgb_src, cfg.parent], tmp_path / "out_rgb", version=version)
    np.testing.assert_array_equal(read_ids(tmp_path / "out_rgb" / "masks" / "train" / "x.png"), raw)


def test_mapillary_unlabeled_and_missing_config(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    colors = [[10 * i, 5, 9] for i in range(5)]
    _mapillary_config(tmp_path / "dl" / "config_v1.2.json", colors, 6)
    ids = rng.integers(0, 6, (16, 24))
    write_jpg(tmp_path / "dl" / "validation" / "images" / "a.jpg", rand_rgb(rng))
    write_palette_png(tmp_path / "dl" / "validation" / "v1.2" / "labels" / "a.png", ids, colors + [[0, 0, 0]])
    prepare("mapillary", [tmp_path / "dl"], tmp_path / "out")
    got = read_ids(tmp_path / "out" / "masks" / "val" / "a.png")
    np.testing.assert_array_equal(got, np.where(ids == 5, 255, ids))
    (tmp_path / "dl" / "config_v1.2.json").unlink()
    with pytest.raises(DataError, match="config_v1.2.json.*mapillary.com"):
        prepare("mapillary", [tmp_path / "dl"], tmp_path / "out2")
