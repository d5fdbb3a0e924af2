"""The facts about a model choice, each checked in exactly one function: does the backbone exist, can the model
and its backbone reach an output stride. Preset validation, the encoder and `seg models` all call these, so a
name is accepted or refused the same way, with the same message, everywhere.

``key`` is how the caller names the value: a preset key (``model.backbone``: ``model.backbone = 'x'``) or a call
argument marked by :func:`segcli.errors.arg` (```backbone` x``, which the CLI shows as ``--backbone x``).
"""

from __future__ import annotations

from segcli.registry import did_you_mean

HUB_PREFIXES = ("hf-hub:", "hf_hub:", "local-dir:")  # names timm resolves elsewhere: not checked offline
STRIDES = (8, 16, 32)  # the output strides an encoder can be asked for (0 = the model's default)


def said(key: str, value: object) -> str:
    """``model.backbone = 'x'`` for a preset key, ```backbone` x`` for a marked call argument."""
    return f"{key} {value}" if key.startswith(("`", "--")) else f"{key} = {value!r}"


def backbone_problem(name: str, key: str = "model.backbone") -> str | None:
    """Why ``name`` is not a usable backbone (not a timm model, not a known torchvision one), or None."""
    import timm

    from segcli.models.tv_encoder import TV_BACKBONES, is_torchvision_backbone

    if name.startswith(HUB_PREFIXES) or timm.is_model(name) or is_torchvision_backbone(name):
        return None
    if name.startswith("torchvision:"):
        return f"{said(key, name)}: torchvision backbones available: " + ", ".join(
            "torchvision:" + n for n in TV_BACKBONES
        )
    return f"{said(key, name)} is not a timm model{did_you_mean(name, timm.list_models())}"


def stride_problem(stride: int, model: str | None = None, key: str = "model.output_stride") -> str | None:
    """Why output ``stride`` (0 = the model's default) cannot be used, or None: it must be one an encoder can be
    asked for and, given a ``model``, one that model declares (``ModelInfo.strides``)."""
    from segcli.models.registry import MODELS

    if stride == 0:
        return None
    if stride not in STRIDES:
        return f"{said(key, stride)}: must be 8, 16 or 32 (0 = model default)"
    if model is None:
        return None
    allowed = MODELS.info(model).strides
    if stride not in allowed:
        return f"{said(key, stride)}: model {model!r} supports {', '.join(map(str, allowed))}"
    return None


def backbone_stride_problem(backbone: str, stride: int, reached: int | None = None) -> str:
    """The message when timm cannot build ``backbone`` at ``stride`` (``reached``: the stride it built instead)."""
    if reached is None:
        why = "cannot dilate to that stride in timm"
    else:
        why = f"ignores timm's output_stride (its strides stay {reached})"
    return (
        f"model.output_stride = {stride}: backbone {backbone!r} {why}; use model.output_stride=32 or a CNN "
        "backbone such as resnet50"
    )
