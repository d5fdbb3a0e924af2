"""`seg infer`: the options handed to the engine, the summary printed, and bad images as one red line that
leave no temp file behind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import DATA_CASES, first_file, user_error

from segcli.cli.app import run

pytestmark = pytest.mark.filterwarnings("ignore")


def test_infer_passes_options(calls: list, tmp_path: Path) -> None:
    assert (
        run(["infer", "runs/x", "a.jpg", "b/", "--out", str(tmp_path), "--amp", "bf16", "--overwrite", "--json"]) == 0
    )
    ((name, args, kwargs),) = calls
    assert name == "predict" and args == (Path("runs/x"), ["a.jpg", "b/"], tmp_path)
    assert kwargs["protocol"].amp == "bf16" and kwargs["output"].overwrite is True and kwargs["device"] == "auto"


def test_infer_defaults(calls: list, tmp_path: Path) -> None:
    argv = ["infer", "runs/x", "-", "-o", str(tmp_path), "--save", "ids,probs", "--probs-format", "png", "--legend"]
    assert run([*argv, "--alpha-bg", "0", "--workers", "2", "--json"]) == 0
    ((_, args, kwargs),) = calls
    output, protocol = kwargs["output"], kwargs["protocol"]
    assert args[1] == ["-"] and kwargs["workers"] == 2 and callable(kwargs["on_image"])
    assert run([*argv, "--workers", "auto", "--json"]) == 0 and calls[-1][2]["workers"] == "auto"
    assert run([*argv, "--json"]) == 0 and calls[-1][2]["workers"] == "auto"  # the default: 0 is "this process"
    assert output.save == ("ids", "probs") and output.probs_format == "png" and output.legend is True
    assert output.alpha == 0.5 and output.alpha_bg == 0.0 and output.overwrite is False
    assert output.skip_existing is False and protocol.batch_size == 8 and protocol.amp is None
    assert output.tiled is None and output.tiled_above == 8192  # tiled by size, above 8192 x 8192
    assert run([*argv, "--tiled", "--tiled-above", "100", "--json"]) == 0
    assert calls[-1][2]["output"].tiled is True and calls[-1][2]["output"].tiled_above == 100
    assert run([*argv, "--no-tiled", "--json"]) == 0 and calls[-1][2]["output"].tiled is False


def test_infer_prints_what_it_wrote_and_skipped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import segcli.infer.predictor as predictor

    def fake(weights: Path, inputs: list[str], out_dir: Path, **kwargs: Any) -> predictor.PredictResult:
        for i, name in enumerate(inputs):
            kwargs["on_image"](i, len(inputs), Path(name))
        return predictor.PredictResult(out_dir, weights, [{"input": "b.jpg"}, {"input": "c.jpg"}], ["a.jpg"], 4.0)

    monkeypatch.setattr(predictor, "predict", fake)
    assert run(["infer", "w.safetensors", "a.jpg", "b.jpg", "c.jpg", "--out", str(tmp_path), "--skip-existing"]) == 0
    out = capsys.readouterr().out
    assert "1 image(s) already done, skipped (--skip-existing)" in out
    assert f"2 input(s) in 4.0 s (0.5 images/s) → {tmp_path}" in out


def test_infer_prints_a_line_per_tiled_image(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import segcli.infer.predictor as predictor

    tiled = {"size": [20000, 30000], "windows": 5220, "tile": [512, 512], "stride": [341, 341], "bigtiff": True}
    tiled |= {"read": "512x512 TIFF tiles, decoded as needed", "geotags": [33550, 33922, 34735]}
    entry = {"input": "ortho.tif", "mask": "out/masks/ortho.tif", "tiled": tiled}
    monkeypatch.setattr(predictor, "predict", lambda *a, **k: predictor.PredictResult(tmp_path, Path("w"), [entry]))
    assert run(["infer", "w.safetensors", "ortho.tif", "--out", str(tmp_path)]) == 0
    assert (
        "ortho.tif: 20000 x 30000 predicted tiled (5220 windows of 512x512, read: 512x512 TIFF tiles, decoded as "
        "needed, 3 georeferencing tags copied) -> out/masks/ortho.tif (BigTIFF)"
        in capsys.readouterr().out.replace("\n", "")
    )


@pytest.mark.parametrize("case", ["zero-byte image", "truncated jpeg", "non-utf8 file name", "60000x60000 png header"])
def test_infer_bad_image(case: str, data: Path, weights: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    needle = DATA_CASES[case](data)
    if case == "non-utf8 file name":
        needle = "bad"
        img = os.fsencode(data / "images" / "val") + b"/bad\xff.jpg"
        with open(img, "wb") as f:
            f.write(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "pred"
    user_error(capfd, ["infer", weights, data / "images" / "val", "--out", out, "--device", "cpu"], needle)
    assert not any(p.name.startswith(".") for p in out.rglob("*"))  # no temp files left


def test_infer_non_utf8_name_is_written(
    data: Path, weights: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """OpenCV's imread/imwrite crash on such names; segcli decodes and encodes bytes instead."""
    img = first_file(data, "images")
    os.rename(bytes(img), os.fsencode(img.parent) + b"/bad\xff.jpg")
    out = tmp_path / "pred"
    assert run(["infer", str(weights), str(img.parent), "--out", str(out), "--device", "cpu"]) == 0
    assert b"bad\xff.png" in os.listdir(os.fsencode(out / "masks"))


def test_empty_files_of_a_real_download(fixtures_dir: Path, weights: Path, tmp_path: Path, capfd) -> None:
    """mmseg's pseudo iSAID images are all 0 bytes."""
    images = fixtures_dir / "mmseg" / "pseudo_isaid_dataset" / "img_dir"
    out = tmp_path / "pred"
    user_error(capfd, ["infer", weights, images, "--out", out, "--device", "cpu"], "P0000_0_896_1024_1920.png", "empty")
    assert not out.exists() or not any(out.rglob("*.*"))


def test_progress_rate_is_images_over_wall_time() -> None:
    """Reported: the bar said 60990.5 images/s for a run at 0.16 images/s (rich's speed over a batch's images,
    reported microseconds apart). The rate is now images done over the wall time, with n/total."""
    from segcli.cli.infer import LOADING, WallRate

    now = [100.0]
    rate = WallRate(lambda: now[0])
    now[0] += 50.0  # loading and the first batch of 8 took 50 s; its 8 images are reported at once
    texts = [rate.describe(i + 1, 10, Path(f"im{i}.png")) for i in range(8)]
    assert texts[0] == "predicting im0.png 1/10 0.02 images/s"
    assert texts[-1] == "predicting im7.png 8/10 0.16 images/s"
    assert LOADING == "loading model..."  # the bar's text until the first image is done
