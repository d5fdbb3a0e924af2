"""What every decoder shares: building the encoder, the train/eval output contract, input checks.

Contract: in eval mode ``forward`` returns logits (N, C, H, W) at the input resolution. In training
mode a model with auxiliary heads returns ``{"out": logits, "aux": [aux_logits, ...]}``, every
entry at input resolution; the trainer weighs the aux losses with :func:`heads.aux_weights_for`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.config.schema import ModelConfig
from segcli.errors import PresetError, UserError
from segcli.models.blocks import DecoderOpts, resize
from segcli.models.encoder import TimmEncoder
from segcli.models.heads import AuxHeads, resolve_stages

ModelOutput = torch.Tensor | dict[str, object]


def decoder_opts(cfg: ModelConfig) -> DecoderOpts:
    """The decoder options of a preset."""
    return DecoderOpts(separable=cfg.separable, attention=cfg.attention, dropout=cfg.dropout)


def build_encoder(cfg: ModelConfig, default_stride: int = 32) -> TimmEncoder:
    """The timm encoder at ``model.output_stride`` (0 = ``default_stride``).

    An explicit stride the backbone cannot reach is a PresetError; the model's own default falls
    back to the backbone's native stride 32 (transformers such as pvt_v2 cannot dilate).
    """
    if cfg.output_stride not in (0, 8, 16, 32):
        raise PresetError(f"model.output_stride = {cfg.output_stride}: must be 8, 16 or 32 (0 = model default)")
    stride = cfg.output_stride or default_stride
    try:
        return TimmEncoder(cfg.backbone, cfg.pretrained, cfg.pretrained_file, output_stride=stride)
    except PresetError as e:
        if cfg.output_stride or stride == 32 or "output_stride" not in str(e):
            raise
    return TimmEncoder(cfg.backbone, cfg.pretrained, cfg.pretrained_file)


def pack_output(module: nn.Module, logits: torch.Tensor, aux: list[torch.Tensor], size: torch.Size) -> ModelOutput:
    """Resize to ``size`` and apply the train/eval contract (dict with aux only in training)."""
    logits = resize(logits, size)
    if module.training and aux:
        return {"out": logits, "aux": [resize(a, size) for a in aux]}
    return logits


def check_input_shape(x: torch.Tensor, multiple: int, model: str) -> None:
    """Raise a UserError naming the padded size when H or W is not a multiple of ``multiple``."""
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        raise UserError(
            f"model {model!r} needs input height and width divisible by {multiple}, got {h}x{w}; "
            f"pad or resize to {ph}x{pw}"
        )


def no_encoder_aux(cfg: ModelConfig) -> None:
    """Models with their own backbone have no encoder stages to hang aux heads on."""
    if cfg.aux_stages:
        raise PresetError(
            f"model.aux_stages = {list(cfg.aux_stages)}: model {cfg.name!r} has its own backbone, not a timm "
            "encoder; remove aux_stages (its built-in aux heads are switched by model.builtin_aux)"
        )


class EncoderDecoder(nn.Module):
    """A timm encoder, a decoder (``decode``) and optional auxiliary FCN heads on encoder stages."""

    def __init__(self, encoder: TimmEncoder, num_classes: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.num_classes = num_classes
        self.opts = decoder_opts(cfg)
        stages = resolve_stages(tuple(cfg.aux_stages), len(encoder.channels), encoder.name)
        self.aux_heads = AuxHeads(encoder.channels, stages, num_classes, cfg.dropout) if stages else None

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Features → (logits at any stride, built-in aux logits)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> ModelOutput:
        feats = self.encoder(x)
        logits, aux = self.decode(feats)
        return self.finish(logits, aux, feats, x)

    def finish(
        self, logits: torch.Tensor, aux: list[torch.Tensor], feats: list[torch.Tensor], x: torch.Tensor
    ) -> ModelOutput:
        """Add the encoder-stage aux heads (training only) and apply the output contract."""
        if self.training and self.aux_heads is not None:
            aux = [*aux, *self.aux_heads(feats)]
        return pack_output(self, logits, aux if self.training else [], x.shape[-2:])
