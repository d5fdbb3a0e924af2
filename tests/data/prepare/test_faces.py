"""`seg prepare facesynthetics` and `seg prepare celebamask-hq`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from prepare_helpers import cli_json, rand_rgb, read_ids, write_jpg, write_png, zip_dir

from segcli.data.io import read_image
from segcli.data.prepare import prepare
from segcli.errors import DataError


def test_facesynthetics_ids_and_split(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(0)
    raw = {}
    for i in range(10):
        k = f"{i:06d}"
        write_png(tmp_path / "dataset_1000" / f"{k}.png", rand_rgb(rng))
        seg = rng.integers(0, 19, (16, 24), dtype=np.uint8)
        seg[0, 0] = 255
        write_png(tmp_path / "dataset_1000" / f"{k}_seg.png", seg)
        (tmp_path / "dataset_1000" / f"{k}_ldmks.txt").write_text("0 0\n")
        raw[k] = seg
    src = zip_dir(tmp_path / "dataset_1000", tmp_path / "dataset_1000.zip")
    res = cli_json(
        capsys, ["prepare", "facesynthetics", str(src), "--out", str(tmp_path / "out"), "--val-ratio", "0.2"]
    )
    assert res["images"] == {"train": 8, "val": 2} and len(res["classes"]) == 19
    for k, seg in raw.items():
        hits = list((tmp_path / "out" / "masks").rglob(f"{k}.png"))
        assert len(hits) == 1
        np.testing.assert_array_equal(read_ids(hits[0]), seg)
    write_png(tmp_path / "dataset_1000" / "000000_seg.png", np.full((16, 24), 30, np.uint8))
    with pytest.raises(DataError, match=r"000000_seg.png: values \[30\]"):
        prepare("facesynthetics", [tmp_path / "dataset_1000"], tmp_path / "out2")


PARTS = [
    "skin",
    "nose",
    "eye_g",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "l_ear",
    "r_ear",
    "mouth",
    "u_lip",
    "l_lip",
    "hair",
    "hat",
    "ear_r",
    "neck_l",
    "neck",
    "cloth",
]


def test_celebamask_hq_merges_parts_and_resizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import segcli.data.prepare.faces as faces

    monkeypatch.setattr(faces, "MASK_SIZE", 32)  # tiny stand-ins for the 1024 px images / 512 px masks
    rng = np.random.default_rng(1)
    base = tmp_path / "CelebAMask-HQ"
    expected = {}
    for i in (0, 1, 2001):
        write_jpg(base / "CelebA-HQ-img" / f"{i}.jpg", rand_rgb(rng, 64, 64))
        exp = np.zeros((32, 32), np.uint8)
        # skin everywhere but a border, hair on top, hat overlapping the hair, then nose.
        layers = [
            ("skin", (2, 30, 2, 30)),
            ("hair", (0, 10, 0, 32)),
            ("hat", (0, 4, 8, 24)),
            ("nose", (14, 18, 14, 18)),
        ]
        for part, (y0, y1, x0, x1) in layers:
            m = np.zeros((32, 32), np.uint8)
            m[y0:y1, x0:x1] = 255
            write_png(
                base / "CelebAMask-HQ-mask-anno" / str(i // 2000) / f"{i:05d}_{part}.png",
                np.repeat(m[..., None], 3, axis=2) if part == "hair" else m,
            )
        # Official order: later parts (hair=13, hat=14) paint over earlier ones (skin=1, nose=2).
        for part in sorted((p for p, _ in layers), key=PARTS.index):
            y0, y1, x0, x1 = dict(layers)[part]
            exp[y0:y1, x0:x1] = PARTS.index(part) + 1
        expected[str(i)] = exp
    res = prepare("celebamask-hq", [base], tmp_path / "out", val_ratio=0.0)
    assert res.counts == {"train": 3}
    for k, exp in expected.items():
        got = read_ids(tmp_path / "out" / "masks" / "train" / f"{k}.png")
        np.testing.assert_array_equal(got, exp)
        img = read_image(tmp_path / "out" / "images" / "train" / f"{k}.png")
        src = cv2.cvtColor(cv2.imread(str(base / "CelebA-HQ-img" / f"{k}.jpg")), cv2.COLOR_BGR2RGB)
        assert img.shape == (32, 32, 3)
        np.testing.assert_array_equal(img, cv2.resize(src, (32, 32), interpolation=cv2.INTER_AREA))
    assert expected["0"][0, 10] == PARTS.index("hat") + 1 and expected["0"][5, 1] == PARTS.index("hair") + 1
