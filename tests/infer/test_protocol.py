"""The prediction protocol: resolved once from the checkpoint's preset and the caller's choices, and checked when
it is made (errors name the option)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from segcli.config.schema import EvalConfig, Preset
from segcli.errors import UserError
from segcli.infer.protocol import PredictionProtocol, ProtocolChoices, resolve_protocol

CPU = torch.device("cpu")


def test_protocol_from_eval_and_cli_values() -> None:
    e = EvalConfig()
    p = resolve_protocol(ProtocolChoices(), Preset(eval=e), CPU)
    assert not p.slide and not p.tta and p.tile == (512, 512) and p.stride == (341, 341)
    p = resolve_protocol(ProtocolChoices(slide=True, tile=(90, 120), tta=True, amp="bf16"), Preset(eval=e), CPU)
    assert p.slide and p.tile == (90, 120) and p.stride == (60, 80) and p.amp == "bf16"
    assert p.tta_scales == (0.5, 0.75, 1.0, 1.25, 1.5) and p.tta_flip
    p = resolve_protocol(ProtocolChoices(), Preset(eval=replace(e, tta=True, tta_scales=(1.0,), tta_flip=False)), CPU)
    assert p.tta_scales == (1.0,) and not p.tta_flip
    with pytest.raises(UserError, match="`stride` 600,10"):
        resolve_protocol(ProtocolChoices(stride=(600, 10)), Preset(eval=e), CPU)
    with pytest.raises(UserError, match="`tile` 0,5"):
        resolve_protocol(ProtocolChoices(tile=(0, 5)), Preset(eval=e), CPU)


def test_precision_follows_the_training_run_unless_asked() -> None:
    from segcli.core.runtime import resolve_amp

    def inference_precision(amp: str | None, train_amp: str, device: torch.device) -> str:
        preset = Preset(train=replace(Preset().train, amp=train_amp))
        return resolve_protocol(ProtocolChoices(amp=amp), preset, device).amp

    assert inference_precision(None, "none", CPU) == "none"
    assert inference_precision(None, "fp16", CPU) == resolve_amp("auto", CPU)  # fp16 exists on CUDA only
    assert inference_precision("none", "bf16", CPU) == "none"
    with pytest.raises(UserError, match="`amp` fp16 needs CUDA"):
        inference_precision("fp16", "none", CPU)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": (0, 5)}, "`size` 0,5: give H,W > 0"),
        ({"size": (5,)}, "`size` 5: give H,W > 0"),
        ({"keep_ratio": (2048,)}, r"eval\.keep_ratio = \[2048\]: give \[long, short\] > 0"),
        ({"tile": (64, 0)}, "`tile` 64,0: give H,W > 0"),
        ({"tile": (64, 64), "stride": (65, 10)}, r"`stride` 65,10: give H,W in \(0, tile\], e\.g\. `stride` 42,42"),
        ({"tta_scales": (1.0, 0.0)}, "`tta_scales` 1.0,0.0: give factors > 0"),
        ({"amp": "fp8"}, "`amp` fp8 is not one of none, bf16, fp16"),
        ({"batch_size": 0}, "`batch_size` 0: give 1 or more"),
        ({"window_batch": 0}, "`window_batch` 0: give 1 or more"),
    ],
)
def test_a_bad_protocol_is_refused_naming_the_option(kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        PredictionProtocol(**kwargs)


def test_a_protocol_normalises_its_sequences_and_knows_when_it_averages_views() -> None:
    p = PredictionProtocol(size=[64.0, 96], tile=[32, 48], stride=[16, 16], tta_scales=[1, 2])
    assert p.size == (64, 96) and p.tile == (32, 48) and p.stride == (16, 16) and p.tta_scales == (1.0, 2.0)
    assert all(isinstance(v, int) for v in p.size) and p.tta
    assert not PredictionProtocol().tta and PredictionProtocol(tta_flip=True).tta


def test_choices_override_the_preset_and_none_keeps_it() -> None:
    e = replace(EvalConfig(), keep_ratio=(2048, 512), batch_size=3)
    preset = Preset(eval=e)
    p = resolve_protocol(ProtocolChoices(), preset, CPU)
    assert p.keep_ratio == (2048, 512) and p.size == () and p.batch_size == 3
    p = resolve_protocol(ProtocolChoices(size=(40, 60), batch_size=1, channels_last=True), preset, CPU)
    assert p.size == (40, 60) and p.keep_ratio == () and p.batch_size == 1 and p.channels_last  # size replaces both
    p = resolve_protocol(ProtocolChoices(tile=(10, 1), stride=(5, 1)), preset, CPU)
    assert p.tile == (10, 1) and p.stride == (5, 1)
    assert resolve_protocol(ProtocolChoices(tile=(2, 2)), preset, CPU).stride == (1, 1)  # two-thirds, at least 1
    p = resolve_protocol(ProtocolChoices(tta_scales=(0.5, 1.0)), preset, CPU)
    assert p.tta_scales == (0.5, 1.0) and p.tta_flip == e.tta_flip  # scales turn TTA on
    assert resolve_protocol(ProtocolChoices(tta=False), Preset(eval=replace(e, tta=True)), CPU).tta_scales == ()
    with pytest.raises(UserError, match=r"`tta_scales` \(none\): give factors > 0"):
        resolve_protocol(ProtocolChoices(tta_scales=()), preset, CPU)


def test_eval_resize_is_the_preset_resize_with_a_plain_pass() -> None:
    from segcli.infer.protocol import eval_resize

    p = eval_resize(Preset(eval=replace(EvalConfig(), size=(96, 128), slide=True, tta=True)))
    assert p.size == (96, 128) and not p.slide and not p.tta and p.amp == "none"
    assert eval_resize(Preset(eval=replace(EvalConfig(), keep_ratio=(200, 100)))).keep_ratio == (200, 100)
