"""What every decoder shares: building the encoder, the train/eval output contract, input checks.

Contract: in eval mode ``forward`` returns logits (N, C, H, W) at the input resolution. In training
mode a model with auxiliary heads returns ``{"out": logits, "aux": [aux_logits, ...]}``, every
entry at input resolution; the trainer weighs the aux losses (``model.aux_weights``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from segcli.errors import PresetError, UserError
from segcli.models.blocks import DecoderOpts, resize
from segcli.models.checks import stride_problem
from segcli.models.encoder import TimmEncoder
from segcli.models.heads import AuxHeads, resolve_stages
from segcli.models.tv_encoder import TorchvisionEncoder, is_torchvision_backbone

ModelOutput = torch.Tensor | dict[str, object]


def build_encoder(
    backbone: str,
    pretrained: bool = False,
    pretrained_file: str = "",
    output_stride: int = 0,
    default_stride: int = 32,
    in_chans: int = 3,
) -> TimmEncoder:
    """The timm encoder at ``output_stride`` (0 = ``default_stride``) taking ``in_chans`` input channels.

    An explicit stride the backbone cannot reach is a PresetError; the model's own default falls
    back to the backbone's native stride 32 (transformers such as pvt_v2 cannot dilate). With ``in_chans``
    other than 3, pretrained stem weights are adapted the way timm adapts them (``adapt_input_conv``).
    """
    problem = stride_problem(output_stride)
    if problem:
        raise PresetError(problem)
    stride = output_stride or default_stride
    if is_torchvision_backbone(backbone):
        tv_stride = output_stride or min(32, max(16, stride))
        return TorchvisionEncoder(backbone, pretrained, pretrained_file, tv_stride, in_chans=in_chans)
    try:
        return TimmEncoder(backbone, pretrained, pretrained_file, output_stride=stride, in_chans=in_chans)
    except PresetError as e:
        if output_stride or stride == 32 or "output_stride" not in str(e):
            raise
    return TimmEncoder(backbone, pretrained, pretrained_file, in_chans=in_chans)


def pack_output(module: nn.Module, logits: torch.Tensor, aux: list[torch.Tensor], size: torch.Size) -> ModelOutput:
    """Resize to ``size`` and apply the train/eval contract (dict with aux only in training)."""
    logits = resize(logits, size)
    if module.training and aux:
        return {"out": logits, "aux": [resize(a, size) for a in aux]}
    return logits


def check_input_shape(x: torch.Tensor, multiple: int, model: str) -> None:
    """Raise a UserError naming the padded size when H or W is not a multiple of ``multiple``.

    Skipped while tracing for export: there the sizes are symbolic, and the exported model's metadata
    carries the multiple its callers pad to.
    """
    if torch.jit.is_tracing():
        return
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        ph, pw = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        raise UserError(
            f"model {model!r} needs input height and width divisible by {multiple}, got {h}x{w}; "
            f"pad or resize to {ph}x{pw}"
        )


def head_parameters(net: nn.Module) -> list[nn.Parameter]:
    """The parameters ``optim.head_lr_mult`` applies to: the network's "head".

    A network names its head modules in a ``head_modules`` class attribute (attribute names; absent ones, such
    as aux heads switched off, are skipped). Without one, the head of a decoder on a timm encoder is everything
    outside the encoder (decoder, classifier and aux heads: mmseg's ``decode_head`` + ``auxiliary_head``), and
    a network without an encoder has none. ``net`` may be wrapped (a Segmenter's ``.net``).
    """
    net = getattr(net, "net", net)
    names = getattr(net, "head_modules", None)
    if names is not None:
        mods = [getattr(net, n) for n in names if isinstance(getattr(net, n, None), nn.Module)]
        return [p for m in mods for p in m.parameters()]
    encoder = getattr(net, "encoder", None)
    if not isinstance(encoder, nn.Module):
        return []
    inside = {id(p) for p in encoder.parameters()}
    return [p for p in net.parameters() if id(p) not in inside]


def set_head_options(
    net: nn.Module,
    num_classes: int,
    in_channels: int,
    decoder_channels: int,
    builtin_aux: bool,
    separable: bool,
    attention: str,
    dropout: float,
) -> None:
    """Set the attributes every network's layer builders read (the same for both base classes below)."""
    net.num_classes = num_classes
    net.in_channels = in_channels
    net.channels = decoder_channels
    net.builtin_aux = builtin_aux
    net.opts = DecoderOpts(separable=separable, attention=attention, dropout=dropout)


class OwnBackbone(nn.Module):
    """A network with its own backbone (registered with ``timm_encoder=False``): the decoder options, the
    input channel count (``self.in_channels``, for the stem) and the switch of its built-in auxiliary heads are
    set, then subclasses build their layers in :meth:`build_layers`. Subclasses name their head modules in
    ``head_modules`` (see :func:`head_parameters`).
    """

    head_modules: tuple[str, ...] = ()

    def __init__(
        self,
        num_classes: int,
        *,
        decoder_channels: int = 128,
        builtin_aux: bool = True,
        attention: str = "none",
        separable: bool = False,
        dropout: float = 0.1,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        set_head_options(self, num_classes, in_channels, decoder_channels, builtin_aux, separable, attention, dropout)
        self.build_layers(num_classes)

    def build_layers(self, num_classes: int) -> None:
        """Create the layers (``self.channels``, ``self.opts`` and ``self.builtin_aux`` are set)."""
        raise NotImplementedError


class EncoderDecoder(nn.Module):
    """A timm encoder, a decoder (``decode``) and optional auxiliary FCN heads on encoder stages.

    Subclasses set ``default_stride`` and build their layers in :meth:`build_decoder` (a layer that reads the
    image itself takes ``self.in_channels``); every one takes the same keyword options, so they are registered
    as they are (``@MODELS.register("fpn")``).
    ``builtin_aux`` matters only to models with built-in auxiliary heads. A decoder with options of its own
    declares them with their defaults in ``extra_options`` (``{"neck": "fpn"}``): they are keyword options of
    its builder like the others (:func:`segcli.models.registry.model_options` lists them) and are in
    ``self.extra`` when :meth:`build_decoder` runs; any other keyword is a TypeError, as for a plain signature.
    """

    default_stride = 32
    head_modules: tuple[str, ...] | None = None  # None: everything outside the encoder (see head_parameters)
    extra_options: dict[str, object] = {}  # the decoder's own keyword options and their defaults

    def __init__(
        self,
        num_classes: int,
        *,
        backbone: str = "resnet18",
        pretrained: bool = False,
        pretrained_file: str = "",
        output_stride: int = 0,
        aux_stages: Sequence[int] = (),
        in_channels: int = 3,
        builtin_aux: bool = True,
        decoder_channels: int = 128,
        attention: str = "none",
        separable: bool = False,
        dropout: float = 0.1,
        **extra: object,
    ) -> None:
        super().__init__()
        unknown = sorted(set(extra) - set(self.extra_options))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments {', '.join(unknown)}")
        self.extra = {key: extra.get(key, default) for key, default in self.extra_options.items()}
        self.encoder = build_encoder(
            backbone, pretrained, pretrained_file, output_stride, self.default_stride, in_chans=in_channels
        )
        set_head_options(self, num_classes, in_channels, decoder_channels, builtin_aux, separable, attention, dropout)
        stages = resolve_stages(tuple(aux_stages), len(self.encoder.channels), self.encoder.name)
        self.aux_heads = AuxHeads(self.encoder.channels, stages, num_classes, dropout) if stages else None
        self.build_decoder(num_classes)

    def build_decoder(self, num_classes: int) -> None:
        """Create the decoder layers (``self.encoder``, ``self.channels`` and ``self.opts`` are set)."""
        raise NotImplementedError

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
