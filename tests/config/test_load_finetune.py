"""The bundled `finetune` preset: what it trains, where its recipe comes from, and its pretrained backbone failing
with the way out when timm's weights cannot be fetched (the preset itself trains in test_load_presets.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from segcli.config.load import load_preset, preset_meta, preset_summary, resolve_preset_path
from segcli.core.factory import model_from_preset
from segcli.errors import CheckpointError


def test_finetune_is_a_pretrained_recipe_with_its_source() -> None:
    p = load_preset("finetune").preset
    assert (p.model.name, p.model.backbone, p.model.pretrained) == ("fpn", "resnet34", True)
    assert p.augment.crop_size == (320, 320) and p.train.epochs == 40 and p.optim.lr == 1e-4
    assert (p.schedule.name, p.schedule.milestones) == ("step", (0.625,))
    header = resolve_preset_path("finetune").read_text(encoding="utf-8").split("\n[")[0]
    assert "Source: segmentation_models.pytorch" in header and "Departures:" in header
    assert "model.pretrained_file" in header  # the offline way, said where the recipe is
    assert "segmentation_models.pytorch" in preset_meta("finetune").source


def test_summary_of_finetune_and_of_a_model_with_its_own_backbone() -> None:
    s = preset_summary("finetune")
    assert (s.model, s.backbone, s.pretrained, s.crop) == ("fpn", "resnet34", True, (320, 320))
    own = preset_summary("ddrnet23slim_cityscapes")
    assert own.backbone == "" and own.pretrained is False
    assert preset_summary("quickstart").pretrained is False


def test_offline_finetune_fails_naming_the_local_file_option(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("segcli.models.encoder._hub_reachable", lambda timeout=3.0: False)  # as on an offline host
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty hub cache
    preset = load_preset("finetune", ["data.root=.", "model.decoder_channels=16"]).preset
    with pytest.raises(
        CheckpointError, match=r"pretrained weights for 'resnet34'.*model\.pretrained_file=.*pretrained=false"
    ):
        model_from_preset(preset.model, 2)
