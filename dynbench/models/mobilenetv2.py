"""MobileNetV2 (Sandler et al. 2018) with width multipliers, built through a factory.

Channel rounding follows torchvision (multiples of 8, ``last_channel`` scaled
only above 1.0), so the static model has torchvision's parameter counts:
3,504,872 at x1.0 down to 1,677,128 at x0.35.
"""

from __future__ import annotations

from torch import Tensor, nn

from dynbench.models.layers import (
    HEAD,
    STEM,
    BlockSpec,
    ConvSpec,
    LayerFactory,
    LinearSpec,
    run_routed,
    static_modules,
)

# expansion t, output channels c, repeats n, first stride s
INVERTED_RESIDUAL_SETTING = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor`` without losing more than 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_bn(layers: LayerFactory, spec: ConvSpec, activation: bool = True) -> nn.Sequential:
    parts: list[nn.Module] = [layers.conv(spec), nn.BatchNorm2d(spec.out_channels)]
    if activation:
        parts.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*parts)


class InvertedResidual(nn.Module):
    def __init__(
        self,
        layers: LayerFactory,
        inp: int,
        oup: int,
        stride: int,
        expand_ratio: int,
        block_index: int,
        num_blocks: int,
    ) -> None:
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        self.expand_ratio = expand_ratio
        where = {"block_index": block_index, "num_blocks": num_blocks}
        parts: list[nn.Module] = []
        if expand_ratio != 1:
            parts.append(conv_bn(layers, ConvSpec(inp, hidden, 1, **where)))
        parts.append(
            conv_bn(
                layers,
                ConvSpec(hidden, hidden, 3, stride, 1, groups=hidden, **where),
            )
        )
        parts.append(layers.conv(ConvSpec(hidden, oup, 1, **where)))
        parts.append(nn.BatchNorm2d(oup))
        attention = layers.branch_attention(BlockSpec(oup, inp, block_index, num_blocks))
        if attention is not None:
            parts.append(attention)
        self.conv = nn.Sequential(*parts)
        self.out_channels = oup

    def forward(self, x: Tensor, routing: Tensor | None = None) -> Tensor:
        out = run_routed(self.conv, x, routing)
        return x + out if self.use_res_connect else out


class MobileNetV2(nn.Module):
    def __init__(
        self,
        width_mult: float = 1.0,
        layers: LayerFactory | None = None,
        num_classes: int = 1000,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        layers = layers or LayerFactory()
        input_channel = make_divisible(32 * width_mult)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [
            conv_bn(layers, ConvSpec(3, input_channel, 3, 2, 1, role=STEM))
        ]
        num_blocks = sum(n for _, _, n, _ in INVERTED_RESIDUAL_SETTING)
        block_index = 0
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            output_channel = make_divisible(c * width_mult)
            for i in range(n):
                stride = s if i == 0 else 1
                block = InvertedResidual(
                    layers, input_channel, output_channel, stride, t, block_index, num_blocks
                )
                spec = BlockSpec(output_channel, input_channel, block_index, num_blocks)
                features.append(layers.wrap_block(block, spec))
                input_channel = output_channel
                block_index += 1
        features.append(conv_bn(layers, ConvSpec(input_channel, self.last_channel, 1, role=HEAD)))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), layers.linear(LinearSpec(self.last_channel, num_classes))
        )
        _init_static(self)

    def forward(self, x: Tensor) -> Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(x.flatten(1))


def _init_static(model: nn.Module) -> None:
    """torchvision's initialisation of the static layers."""
    for m in static_modules(model):
        if type(m) is nn.Conv2d:
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif type(m) is nn.Linear:
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
