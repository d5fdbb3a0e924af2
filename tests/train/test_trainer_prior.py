"""Training a temporal-prior model (model.prior = "mask") on still images, then predicting a clip with it."""

from __future__ import annotations

from pathlib import Path

from segcli.data.io import write_image
from segcli.data.prepare.shapes import render_frame
from segcli.infer.predictor import OutputOptions, predict
from segcli.train.trainer import train


def test_a_prior_model_trains_on_stills_and_predicts_a_clip_frame_to_frame(
    tiny_overrides: list[str], tmp_path: Path
) -> None:
    run = train("quickstart", [*tiny_overrides, "model.prior=mask", "train.epochs=1"])
    assert (run.run_dir / "weights" / "last.safetensors").is_file()
    for k in range(3):
        write_image(tmp_path / "clip" / f"{k:03d}.png", render_frame(1, k, 48)[0])
    output = OutputOptions(save="mask", sequence=True)
    res = predict(run.run_dir, [str(tmp_path / "clip")], tmp_path / "pred", device="cpu", output=output)
    assert res.sequence is not None and res.sequence["prior"] is True and res.sequence["frames"] == 3
