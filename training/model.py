"""The RGB-D VLM: PaliGemma-2 plus a metric point-map branch (paper 3.3 and 6.1).

    rgb (B,3,S,S) ──SigLIP (frozen)──────────────────────────► (B,N,Cv)  ┐
                                                                          ├─ concat (B,N,2Cv) ─ linear ─► (B,N,D)
    point map (B,4,S,S) ─ sinusoidal (B,6F+1,S,S) ─ Conv2d p×p/p ─► (B,N,Cv)  ┘

N = (S/p)^2 image tokens, Cv the SigLIP width (1152 for So400m), D the Gemma width, F = 32 frequencies.
The fused tokens replace the `<image>` placeholders exactly as PaliGemma's projected image features do.

Why the model takes a single `pixel_values` tensor of 3 + 4 channels (RGB then xyz + validity) rather than a new
keyword: PaliGemma's `forward` and `generate` already route `pixel_values` to `get_image_features` on the first
step only and drop it once the image tokens are cached, so overriding that one method is the whole integration.
A 3-channel `pixel_values` means "no point map": the point-map half of the projector then sees zeros.

Feature scale: PaliGemma divides projected image features by sqrt(text hidden size) because Gemma multiplies all
input embeddings by that factor. transformers 5.x moved the multiplication into the token embedding module
(`Gemma2TextScaledWordEmbedding`), so image features are scattered in unscaled; that is the same arithmetic, and
`get_image_features` below keeps it (no extra division).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    Gemma2Config,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    SiglipVisionConfig,
)
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.models.paligemma.modeling_paligemma import PaliGemmaModel, PaliGemmaPreTrainedModel

from training.config import ModelConfig, PointMapInput


def sinusoidal_encoding(xyz: torch.Tensor, num_frequencies: int = 32) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3 * 2F, H, W): per coordinate [sin(c w_k)]_k then [cos(c w_k)]_k, w_k = 1/10000^(k/F).

    Channel order: x sin (F), x cos (F), y sin, y cos, z sin, z cos. Computed in float32 whatever the model dtype:
    in bfloat16 a 3 m coordinate is only known to 1.5 cm, which the high frequencies would turn into noise.
    """
    xyz = xyz.float()
    k = torch.arange(num_frequencies, device=xyz.device, dtype=torch.float32)
    freqs = 1.0 / (10000.0 ** (k / num_frequencies))  # (F,)
    angles = xyz[:, :, None] * freqs[None, None, :, None, None]  # (B, 3, F, H, W)
    enc = torch.cat([angles.sin(), angles.cos()], dim=2)  # (B, 3, 2F, H, W)
    return enc.flatten(1, 2)  # (B, 6F, H, W)


class PointMapEncoder(nn.Module):
    """Sinusoidal encoding + validity mask -> patchify Conv2d to the SigLIP grid and width."""

    def __init__(self, vision_hidden: int, patch_size: int, num_frequencies: int = 32):
        super().__init__()
        self.num_frequencies = num_frequencies
        in_channels = 3 * 2 * num_frequencies + 1  # 193 for F = 32
        self.conv = nn.Conv2d(in_channels, vision_hidden, kernel_size=patch_size, stride=patch_size)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.conv.weight, nonlinearity="linear")
        nn.init.zeros_(self.conv.bias)

    def forward(self, point_map: torch.Tensor) -> torch.Tensor:
        # point_map: (B, 4, S, S) = xyz meters + validity
        features = torch.cat(
            [sinusoidal_encoding(point_map[:, :3], self.num_frequencies), point_map[:, 3:4].float()], 1
        )
        features = self.conv(features.to(self.conv.weight.dtype))  # (B, Cv, S/p, S/p)
        return features.flatten(2).transpose(1, 2)  # (B, N, Cv), row-major like SigLIP's patches


# ------------------------------------------------------------------------------------------ fused PaliGemma


class HiSpatialPaliGemmaModel(PaliGemmaModel):
    """PaliGemmaModel whose image features are [SigLIP(rgb) ; PointMapEncoder(point map)] projected together."""

    def __init__(self, config: PaliGemmaConfig):
        super().__init__(config)
        self.point_map_input: PointMapInput = getattr(config, "point_map_input", "none")
        if self.point_map_input != "none":
            vision = config.vision_config
            self.depth_encoder = PointMapEncoder(
                vision.hidden_size, vision.patch_size, getattr(config, "point_map_frequencies", 32)
            )
            self.multi_modal_projector.linear = nn.Linear(2 * vision.hidden_size, vision.projection_dim)
            self.reset_point_map_branch()

    @torch.no_grad()
    def reset_point_map_branch(self) -> None:
        """Paper 6.2 init: Kaiming conv, zero point-map half of the projector (the RGB half is left as is)."""
        if self.point_map_input == "none":
            return
        self.depth_encoder.reset_parameters()
        self.multi_modal_projector.linear.weight[:, self.config.vision_config.hidden_size :].zero_()

    def get_image_features(self, pixel_values: torch.Tensor, **kwargs) -> BaseModelOutputWithPooling:
        # pixel_values: (B, 3, S, S) RGB normalised to [-1, 1], optionally + (B, 4, S, S) point map
        rgb = pixel_values[:, :3]
        image_outputs = self.vision_tower(rgb.to(self.vision_tower.dtype), **kwargs)
        rgb_features = image_outputs.last_hidden_state  # (B, N, Cv)
        if self.point_map_input != "none":
            if pixel_values.shape[1] == 7:
                point_features = self.depth_encoder(pixel_values[:, 3:])  # (B, N, Cv)
            elif pixel_values.shape[1] == 3:
                point_features = torch.zeros_like(rgb_features)
            else:
                raise ValueError(f"pixel_values must have 3 or 7 channels, got {pixel_values.shape[1]}")
            rgb_features = torch.cat(
                [rgb_features, point_features.to(rgb_features.dtype)], dim=-1
            )  # (B, N, 2Cv)
        image_outputs.pooler_output = self.multi_modal_projector(rgb_features)  # (B, N, D)
        return image_outputs


class HiSpatialForConditionalGeneration(PaliGemmaForConditionalGeneration):
    """PaliGemmaForConditionalGeneration with the fused image pathway; loss, generation and masks unchanged."""

    def __init__(self, config: PaliGemmaConfig):
        # Skip PaliGemmaForConditionalGeneration.__init__: it would build (and for 3B, allocate) a plain
        # PaliGemmaModel only for us to replace it.
        PaliGemmaPreTrainedModel.__init__(self, config)
        self.model = HiSpatialPaliGemmaModel(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()
        self.model.reset_point_map_branch()

    @property
    def point_map_input(self) -> PointMapInput:
        return self.model.point_map_input

    def freeze_vision_tower(self) -> None:
        """Paper 3.3: SigLIP stays frozen; conv, projector and language model train."""
        for param in self.model.vision_tower.parameters():
            param.requires_grad_(False)


# ------------------------------------------------------------------------------------------ construction


def paligemma_config(config: ModelConfig, vocab_size: int, image_token_id: int) -> PaliGemmaConfig:
    """A PaliGemmaConfig for `config`'s architecture (random init); the point-map fields ride along in it."""
    vision = SiglipVisionConfig(
        image_size=config.image_size,
        patch_size=config.patch_size,
        hidden_size=config.vision_hidden,
        intermediate_size=config.vision_intermediate,
        num_hidden_layers=config.vision_layers,
        num_attention_heads=config.vision_heads,
        vision_use_head=False,
        projection_dim=config.text_hidden,
    )
    text = Gemma2Config(
        vocab_size=vocab_size,
        hidden_size=config.text_hidden,
        intermediate_size=config.text_intermediate,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads,
        num_key_value_heads=config.text_kv_heads,
        head_dim=config.head_dim,
        query_pre_attn_scalar=config.head_dim,
    )
    pg = PaliGemmaConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        image_token_id=image_token_id,
        projection_dim=config.text_hidden,
        hidden_size=config.text_hidden,
    )
    return with_point_map_fields(pg, config)


def with_point_map_fields(pg: PaliGemmaConfig, config: ModelConfig) -> PaliGemmaConfig:
    pg.point_map_input = config.point_map_input
    pg.point_map_frequencies = config.num_frequencies
    pg.vision_config.projection_dim = pg.text_config.hidden_size
    return pg


def build_random_model(
    config: ModelConfig, vocab_size: int, image_token_id: int
) -> HiSpatialForConditionalGeneration:
    """Random-initialised model of the configured architecture (tests, benchmarks, the tiny demo)."""
    return HiSpatialForConditionalGeneration(paligemma_config(config, vocab_size, image_token_id))


def from_paligemma(
    pretrained: PaliGemmaForConditionalGeneration, config: ModelConfig
) -> HiSpatialForConditionalGeneration:
    """Wrap pretrained PaliGemma weights (paper 6.2): everything copied, the projector's RGB half from the
    pretrained projector, its point-map half zero, the conv Kaiming-initialised. The result answers exactly like
    `pretrained` until the point-map half is trained."""
    pg = with_point_map_fields(PaliGemmaConfig.from_dict(pretrained.config.to_dict()), config)
    model = HiSpatialForConditionalGeneration(pg).to(pretrained.dtype)
    state = pretrained.state_dict()
    w_key = "model.multi_modal_projector.linear.weight"
    if config.point_map_input != "none":
        weight = torch.zeros_like(model.state_dict()[w_key])  # (D, 2Cv)
        weight[:, : state[w_key].shape[1]] = state[w_key]
        state = {**state, w_key: weight}
    missing, unexpected = model.load_state_dict(state, strict=False)
    allowed_missing = {k for k in model.state_dict() if k.startswith("model.depth_encoder.")} | {
        "lm_head.weight"
    }
    if set(missing) - allowed_missing or unexpected:
        raise ValueError(f"pretrained PaliGemma does not fit: missing {missing}, unexpected {unexpected}")
    return model


def load_pretrained(
    config: ModelConfig, dtype: torch.dtype = torch.float32
) -> HiSpatialForConditionalGeneration:
    """The real loader: PaliGemma weights from a local path or hub id (`config.backbone`), wrapped for RGB-D."""
    if config.backbone is None:
        raise ValueError("ModelConfig.backbone is None: use build_random_model for a random model")
    pretrained = PaliGemmaForConditionalGeneration.from_pretrained(config.backbone, dtype=dtype)
    return from_paligemma(pretrained, config)


def num_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
