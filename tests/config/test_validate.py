"""Preset validation (segcli/config/validate.py): every check runs at load, and each error names the file (or
the command line) that set the key, the key and the value."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import user_error
from preset_helpers import write

from segcli.cli.app import run
from segcli.config.load import list_presets, load_preset, preset_from_dict
from segcli.config.schema import ModelConfig, Preset, TrainConfig
from segcli.config.validate import (
    aux_loss_weights,
    backbone_norm,
    channel_norm,
    check_class_weights,
    read_class_weights,
    resolve_length,
    resolve_normalisation,
    validate_preset,
    where,
)
from segcli.core.factory import model_from_preset
from segcli.errors import PresetError
from segcli.train.trainer import train


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ('[model]\nname = "unet2"\n', r"model.name: unknown model 'unet2' \(did you mean \"unet\"\?\)"),
        ('[model]\nbackbone = "resnet18x"\n', r"model.backbone = 'resnet18x' is not a timm model"),
        ('[loss]\nterms = ["ce", "dcie"]\n', r"loss.terms: unknown loss 'dcie' \(did you mean \"dice\"\?\)"),
        ('[train]\ntime_budget = "15 minutes"\n', r"train.time_budget = '15 minutes': use a duration such as 90s"),
        (
            '[model]\nname = "bisenetv2"\naux_weights = [1.0, 0.5]\n',
            r"model.aux_weights has 2 values but model 'bisenetv2'",
        ),
        ('[train]\ndevice = "gpu"\n', r"train.device = 'gpu' is not one of auto, cpu, cuda, cuda:N, mps"),
        ('[train]\nmonitor = "miou"\n', r"train.monitor = 'miou'; choose one of mIoU, pixel_accuracy"),
        ("[augment]\nscale = [2.0, 0.5]\n", r"augment.scale = \[2.0, 0.5\] must be \[min, max\]"),
        ("[loss]\nfocal_gamma = 1.0\n", r"loss.focal_gamma moved to \[loss.focal\] gamma"),
    ],
)
def test_bad_presets_fail_at_load_naming_file_and_key(tmp_path: Path, text: str, pattern: str) -> None:
    p = write(tmp_path / "bad.toml", text)
    with pytest.raises(PresetError, match=rf"^{p}: {pattern}"):
        load_preset(p)


def test_errors_name_the_file_that_set_the_key(tmp_path: Path) -> None:
    base = write(tmp_path / "base.toml", '[train]\ntime_budget = "1x"\n')
    child = write(tmp_path / "child.toml", 'extends = "base.toml"\n[train]\nepochs = 2\n')
    with pytest.raises(PresetError, match=rf"^{base}: train.time_budget = '1x'"):
        load_preset(child)
    with pytest.raises(PresetError, match=r"^command line: train.time_budget = '2'"):
        load_preset(child, ["train.time_budget=2"])


@pytest.mark.parametrize("other", ["epochs = 12", "iters = 500"])
def test_time_budget_with_an_explicit_length_names_both_keys(tmp_path: Path, other: str) -> None:
    key = other.split(" ")[0]
    p = write(tmp_path / "p.toml", f'[train]\n{other}\ntime_budget = "15m"\n')
    with pytest.raises(PresetError, match=rf"^{p}: train.time_budget = '15m' and train.{key} = \d+ both set"):
        load_preset(p)
    with pytest.raises(PresetError, match=rf"^command line: train.time_budget = '15m' and train.{key}"):
        load_preset(None, ["train.time_budget=15m", f"train.{other.replace(' ', '')}"])


@pytest.mark.parametrize("other", ["epochs = 12", "iters = 500"])
def test_the_command_line_decides_between_budget_and_length(tmp_path: Path, other: str) -> None:
    """`seg train quickstart train.time_budget=15m` trains for 15 minutes although quickstart sets epochs."""
    key, value = other.split(" = ")
    base = write(tmp_path / "base.toml", f"[train]\n{other}\n")
    t = load_preset(base, ["train.time_budget=15m"]).preset.train
    assert (t.time_budget_seconds, t.epochs, t.iters) == (900.0, 10, 0)  # the length reset to its default
    budgeted = write(tmp_path / "budget.toml", '[train]\ntime_budget = "15m"\n')
    t = load_preset(budgeted, [f"train.{key}={value}"]).preset.train
    assert t.time_budget == "" and getattr(t, key) == int(value)
    # a resolved preset (a run's preset.toml, a checkpoint) with both: the budget wins, as it always did
    both = {"train": {"time_budget": "15m", key: int(value)}}
    t = preset_from_dict(both).train
    assert t.time_budget == "15m" and (t.epochs, t.iters) == (10, 0)


def test_time_budget_beside_default_lengths_loads(tmp_path: Path) -> None:
    p = write(tmp_path / "p.toml", '[train]\nepochs = 10\niters = 0\ntime_budget = "15m"\n')
    assert load_preset(p).preset.train.time_budget_seconds == 900.0
    base = write(tmp_path / "base.toml", "[train]\nepochs = 12\n")
    assert load_preset(base, ["train.epochs=10", "train.time_budget=15m"]).preset.train.time_budget == "15m"


def test_class_weights_file_is_checked_at_load(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"loss.class_weights = '.*nope.toml': file not found; .*seg class-weights"):
        load_preset(None, [f"loss.class_weights={tmp_path / 'nope.toml'}"])
    bad = write(tmp_path / "bad.toml", 'weights = ["a"]\n')
    with pytest.raises(PresetError, match=r"bad.toml: needs a 'weights' list of numbers"):
        load_preset(None, [f"loss.class_weights={bad}"])
    good = write(tmp_path / "good.toml", "weights = [1.0, 2]\n")
    assert load_preset(None, [f"loss.class_weights={good}"]).preset.loss.class_weights == str(good)
    with pytest.raises(PresetError, match=r"class weights must be >= 0"):
        load_preset(None, ["loss.class_weights=[1, -1]"])


def test_scale_lr_with_batch_needs_the_batch_the_lr_was_tuned_for() -> None:
    import pytest

    from segcli.config.load import load_preset
    from segcli.errors import PresetError

    with pytest.raises(PresetError, match="needs optim.lr_batch_size"):
        load_preset("quickstart", ["optim.scale_lr_with_batch=linear"])


def test_auto_needs_a_budget(tiny_overrides: list[str], tmp_path: Path) -> None:
    from segcli.errors import PresetError

    with pytest.raises(PresetError, match="train.auto"):
        train("quickstart", [*tiny_overrides, "train.auto=true"])


def test_missing_pretrained_file_fails_at_load(tmp_path: Path) -> None:
    with pytest.raises(
        PresetError, match=r"command line: model.pretrained_file = '.*nope.safetensors': file not found"
    ):
        load_preset(None, [f"model.pretrained_file={tmp_path / 'nope.safetensors'}"])


def test_matplotlib_backend_without_matplotlib_is_refused_at_load(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    rc = run(["presets", "show", "quickstart", "train.plots_backend=matplotlib"])
    err = capfd.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "train.plots_backend" in err and "pip install 'segcli[plots]'" in err
    assert run(["presets", "show", "quickstart", "train.plots_backend=opencv"]) == 0


def test_a_missing_class_weights_file_fails_at_load_with_the_command_to_make_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the preset's relative weights file does not exist here
    path = next(p for p in list_presets() if p.stem == "unet_r34_facesynthetics")
    with pytest.raises(PresetError, match=rf"^{path}: loss.class_weights = .*file not found.*seg class-weights"):
        load_preset(path)


@pytest.mark.parametrize("name", ["ddrnet23_slim", "bisenetv2", "enet"])
@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("model.pretrained=true", r"model.pretrained = true: model '\w+' has its own backbone.*trains from scratch"),
        ("model.pretrained_file=w.safetensors", r"model.pretrained_file = 'w.safetensors': .*own backbone"),
        ("model.backbone=resnet50", r"model.backbone = 'resnet50': .*own backbone.*remove model.backbone"),
    ],
)
def test_own_backbone_models_reject_backbone_options(name: str, override: str, pattern: str) -> None:
    with pytest.raises(PresetError, match=rf"^command line: {pattern}"):
        load_preset(None, [f"model.name={name}", override])


@pytest.mark.parametrize(
    ("overrides", "mean", "std"),
    [
        (["model.backbone=vit_base_patch16_224"], (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # timm pretrained_cfg: 0.5/0.5
        (
            ["model.backbone=vit_base_patch16_clip_224.openai"],  # a tag picks that tag's config: CLIP statistics
            (0.48145466, 0.4578275, 0.40821073),
            (0.26862954, 0.26130258, 0.27577711),
        ),
        (["model.backbone=resnet50"], (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        (["model.name=ddrnet23_slim"], (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # own backbone: ImageNet
        (["model.backbone=hf-hub:someone/some-model"], (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # not offline
        (  # explicit values win, each on its own
            ["model.backbone=vit_base_patch16_224", "model.mean=[0.4, 0.4, 0.4]"],
            (0.4, 0.4, 0.4),
            (0.5, 0.5, 0.5),
        ),
        (["model.backbone=vit_base_patch16_224", "model.std=[0.2,0.2,0.2]"], (0.5, 0.5, 0.5), (0.2, 0.2, 0.2)),
    ],
)
def test_mean_and_std_default_to_the_backbones_pretraining_statistics(overrides, mean, std) -> None:  # noqa: ANN001
    m = load_preset(None, overrides).preset.model
    assert m.mean == pytest.approx(mean) and m.std == pytest.approx(std)
    assert all(isinstance(v, float) for v in (*m.mean, *m.std))  # resolved: the run's preset.toml records numbers


def test_a_vit_backbone_normalises_with_its_own_statistics_and_checkpoints_record_them(tmp_path) -> None:  # noqa: ANN001
    from segcli.config.load import preset_from_dict, preset_to_dict
    from segcli.core.checkpoint import load_weights, read_metadata, save_weights
    from segcli.data.format import DatasetInfo

    assert ModelConfig().mean == "auto" and ModelConfig().std == "auto"
    model = model_from_preset(ModelConfig(name="fpn", backbone="test_vit", decoder_channels=16), 3)  # built in code
    assert model.mean.flatten().tolist() == pytest.approx([127.5] * 3) and model.std.flatten().tolist() == [127.5] * 3
    preset = load_preset(None, ["model.backbone=test_vit"]).preset
    raw = preset_to_dict(preset)
    assert list(raw["model"]["mean"]) == [0.5, 0.5, 0.5]  # what preset.toml stores
    info = DatasetInfo(name="t", classes=("a", "b", "c"), palette=((0, 0, 0), (1, 1, 1), (2, 2, 2)))
    path = save_weights(tmp_path / "w.safetensors", model, preset, info)
    assert json.loads(read_metadata(path)["mean"]) == [0.5, 0.5, 0.5]  # and the checkpoint's metadata
    _, meta = load_weights(path)
    assert meta.preset.model.std == (0.5, 0.5, 0.5)
    raw["model"]["mean"] = "auto"  # a hand-written dict resolves the same way when read back
    assert preset_from_dict(raw).model.mean == (0.5, 0.5, 0.5)


def test_bad_mean_is_a_clear_error() -> None:
    with pytest.raises(PresetError, match=r'model.mean = \[0.5, 0.5\] needs 3 values .* or "auto"'):
        load_preset(None, ["model.mean=[0.5,0.5]"])
    with pytest.raises(
        PresetError, match=r"\[model\] std = 'imagenet' has the wrong type; expected list of number or one of 'auto'"
    ):
        load_preset(None, ["model.std=imagenet"])


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["meta.reported_miou=75.0"], r"meta.reported_miou = 75 needs meta.protocol"),
        (["meta.reported_miou=175.0"], r"\[meta\] reported_miou = 175.0 is out of range"),
        (["meta.sauce=x"], r"unknown key 'meta.sauce' \(did you mean \"meta.source\"\?\)"),
        (["meta.reported_miou=high"], r"\[meta\] reported_miou = 'high' has the wrong type; expected number"),
    ],
)
def test_bad_meta_is_a_clear_error(overrides: list[str], pattern: str) -> None:
    with pytest.raises(PresetError, match=pattern):
        load_preset(None, overrides)


OPTION_CASES: dict[str, tuple[Callable[[Path, Path, Path], list], tuple[str, ...]]] = {
    "unknown model": (lambda w, d, t: ["presets", "show", "quickstart", "model.name=unetz"], ("unetz",)),
    "unknown backbone (train)": (
        lambda w, d, t: ["train", "quickstart", f"data.root={d}", "model.backbone=resnet19"],
        ('"resnet18"',),
    ),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_bad_option(case: str, weights: Path, data: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    make, needles = OPTION_CASES[case]
    user_error(capfd, make(weights, data, tmp_path), *needles)


def test_where_names_the_source_of_a_key_or_of_a_key_below_it() -> None:
    origin = {"train.epochs": "a.toml", "loss.ce.label_smoothing": "command line"}
    assert where(origin, "train.epochs") == "a.toml"
    assert where(origin, "loss.ce") == "command line"  # a table: whoever set a key inside it
    assert where(origin, "model.name", default="quickstart.toml") == "quickstart.toml"
    assert where({}, "model.name") == "command line"


def test_aux_loss_weights_default_broadcast_or_one_per_output() -> None:
    assert aux_loss_weights((), 3) == [0.4, 0.4, 0.4]
    assert aux_loss_weights((1.0,), 2) == [1.0, 1.0] and aux_loss_weights((1.0,), 0) == []
    assert aux_loss_weights((1, 0.5), 2, "m") == [1.0, 0.5]
    with pytest.raises(PresetError, match=r"model.aux_weights = \[1.0, -0.5\]: weights must be >= 0"):
        aux_loss_weights((1.0, -0.5), 2)
    with pytest.raises(
        PresetError, match=r"has 3 values but model 'pspnet' returns 2 auxiliary outputs; give 2 values"
    ):
        aux_loss_weights((1.0, 0.5, 0.2), 2, "pspnet")
    with pytest.raises(PresetError, match=r"returns 0 auxiliary outputs; remove it"):
        aux_loss_weights((1.0, 0.5), 0, "unet")


def test_read_class_weights_from_a_file(tmp_path: Path) -> None:
    assert read_class_weights(write(tmp_path / "w.toml", "weights = [1, 2.5, 0]\n")) == (1.0, 2.5, 0.0)
    with pytest.raises(PresetError, match=r"file not found; write it with `seg class-weights /data/x --method inv"):
        read_class_weights(tmp_path / "none.toml", dataset="/data/x")
    with pytest.raises(PresetError, match=r"b.toml: needs a 'weights' list of numbers"):
        read_class_weights(write(tmp_path / "b.toml", "weights = [true, 1]\n"))
    with pytest.raises(PresetError, match=r"n.toml: class weights must be >= 0"):
        read_class_weights(write(tmp_path / "n.toml", "weights = [1, -2]\n"))


def test_check_class_weights_counts_one_per_class() -> None:
    check_class_weights((1.0, 2.0), 2)
    with pytest.raises(PresetError, match=r"^w.toml: 3 class weights given for 2 classes$"):
        check_class_weights((1.0, 2.0, 3.0), 2, source="w.toml")


def test_backbone_norm_reads_timms_config_offline() -> None:
    imagenet = pytest.approx((0.485, 0.456, 0.406, 0.229, 0.224, 0.225))
    for m in (ModelConfig(backbone="resnet18"), ModelConfig(backbone="no_such_net_anywhere"), ModelConfig(name="nope")):
        mean, std = backbone_norm(m)  # a known backbone, an unknown one, an unknown model: ImageNet's, no download
        assert (*mean, *std) == imagenet
    mean, std = backbone_norm(ModelConfig(backbone="vit_base_patch16_224"))
    assert (*mean, *std) == pytest.approx((0.5,) * 6)


def test_resolve_normalisation_keeps_explicit_values() -> None:
    m = ModelConfig(backbone="resnet18", mean=(0.1, 0.2, 0.3))
    r = resolve_normalisation(m)
    assert r.mean == (0.1, 0.2, 0.3) and r.std == pytest.approx((0.229, 0.224, 0.225))
    explicit = ModelConfig(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert resolve_normalisation(explicit) is explicit


def test_auto_normalisation_of_n_channels_uses_the_datasets_statistics_or_stretches_rgb(tmp_path: Path) -> None:
    rgb = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    mean, std = channel_norm(rgb, 4)  # RGB kept, an extra channel at the stated guess
    assert mean == pytest.approx((0.485, 0.456, 0.406, 0.5)) and std == pytest.approx((0.229, 0.224, 0.225, 0.25))
    mean, std = channel_norm(rgb, 1)  # grey: the RGB values' average
    assert mean == pytest.approx((0.449,)) and std == pytest.approx((0.226,))
    (tmp_path / "dataset.toml").write_text('classes = ["a", "b"]\nmean = [0.1, 0.2, 0.3, 0.4]\nstd = [1, 2, 3, 4]\n')
    r = resolve_normalisation(ModelConfig(), 4, tmp_path)
    assert r.mean == (0.1, 0.2, 0.3, 0.4) and r.std == (1.0, 2.0, 3.0, 4.0)
    assert resolve_normalisation(ModelConfig(), 2, tmp_path).mean == pytest.approx((0.449, 0.5))  # 4 values ≠ 2
    assert resolve_normalisation(ModelConfig(), 3, tmp_path).mean == rgb[0]  # RGB: the backbone's, as before
    loaded = load_preset(None, [f"data.root={tmp_path}", "data.channels=4"]).preset
    assert loaded.model.mean == (0.1, 0.2, 0.3, 0.4)


def test_mean_and_std_need_one_value_per_channel() -> None:
    with pytest.raises(PresetError, match=r"model.mean = \[0.5, 0.5, 0.5\] needs 4 values \(one per data.channels = 4"):
        load_preset(None, ["data.channels=4", "model.mean=[0.5, 0.5, 0.5]"])
    assert load_preset(None, ["data.channels=1", "model.mean=[0.5]", "model.std=[0.2]"]).preset.model.mean == (0.5,)


def test_a_resolved_preset_with_budget_and_length_keeps_the_budget() -> None:
    t = TrainConfig(epochs=12, time_budget="15m")
    assert resolve_length(t) == TrainConfig(time_budget="15m")  # no origin: a run's or a checkpoint's preset
    assert resolve_length(TrainConfig(epochs=12)) == TrainConfig(epochs=12)


def test_validate_preset_attributes_a_key_nobody_set_to_the_default_source() -> None:
    bad = Preset(train=TrainConfig(device="gpu"))
    with pytest.raises(PresetError, match=r"^my.toml: train.device = 'gpu'"):
        validate_preset(bad, {}, default="my.toml")
    validate_preset(Preset(), check_files=False)


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["model.neck=pan"], r"model\.neck.*'pan'.*fpn, panet, bifpn"),
        (["model.name=unet", "model.neck=panet"], r"model\.neck = 'panet': model 'unet' does not support it"),
        (["model.name=panet", "model.neck=bifpn"], r"model\.neck = 'bifpn': model 'panet' does not support it"),
        (["model.neck_repeats=2"], r"model\.neck_repeats = 2: neck 'fpn' has one pass; only 'bifpn' stacks layers"),
        (["model.neck_repeats=0"], r"neck_repeats = 0 is out of range"),
        (["model.name=pointrend", "model.full_res=true"], r"model\.full_res = true: model 'pointrend' does not"),
        (["model.name=deeplabv3plus", "model.full_res=true"], r"model\.full_res = true: model 'deeplabv3plus' does"),
    ],
)
def test_neck_keys_are_checked_when_the_preset_loads(overrides: list[str], pattern: str) -> None:
    from segcli.config.load import load_preset
    from segcli.errors import PresetError

    with pytest.raises(PresetError, match=pattern):
        load_preset("quickstart", overrides)


def test_the_neck_repeats_default_is_the_models() -> None:
    from segcli.config.schema import ModelConfig
    from segcli.models.necks import DEFAULT_REPEATS

    assert ModelConfig().neck_repeats == DEFAULT_REPEATS


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["loss.terms=['ce','kd']"], r"loss\.terms has kd, which compare the model with a teacher: set train\.distill"),
        (
            ["train.distill.teacher={w}"],
            r"train\.distill\.teacher is set but loss\.terms \['ce'\] has no distil.*cwd, kd",
        ),
        (
            ["train.distill.teacher=/no/such.safetensors", "loss.terms=['ce','cwd']"],
            r"train\.distill\.teacher = .*: no such weights file or run",
        ),
        (["loss.terms=['ce','kd']", "loss.kd.temperature=0"], r"\[loss\.kd\] temperature = 0\.0 is out of range"),
    ],
)
def test_distillation_keys_are_checked_when_the_preset_loads(
    tmp_path: Path, overrides: list[str], pattern: str
) -> None:
    weights = tmp_path / "t.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(PresetError, match="command line: " + pattern):
        load_preset("quickstart", [o.format(w=weights) for o in overrides])


def test_a_teacher_with_a_distillation_term_loads_and_records_the_term_tables(tmp_path: Path) -> None:
    weights = tmp_path / "t.safetensors"
    weights.write_bytes(b"")
    p = load_preset(
        "quickstart", [f"teacher={weights}", "loss.terms=['ce','kd','cwd']", "loss.kd.temperature=4"]
    ).preset
    assert p.train.distill.teacher == str(weights)
    assert p.loss.options_for("kd").temperature == 4.0 and p.loss.options_for("cwd").temperature == 1.0
