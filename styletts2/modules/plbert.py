"""PL-BERT: the phoneme-level ALBERT whose hidden states drive durations, prosody and style diffusion.

The network is transformers' `AlbertModel` itself (so its state dict is upstream's `bert.*` rows);
only `forward` changes, returning the last hidden state alone.
"""
from pathlib import Path

import gin
import torch
from transformers import AlbertConfig, AlbertModel

from styletts2.checkpoint import torch_load

# Keys of PL-BERT's pretraining checkpoint outside the encoder: its phoneme and word prediction
# heads, which StyleTTS2 does not use.
_PRETRAINING_HEADS = ("mask_predictor.", "word_predictor.")
# A constant 0..N-1 buffer that older transformers saved in the state dict; 5.x keeps it out.
_LEGACY_BUFFER = "embeddings.position_ids"


@gin.configurable
class PLBert(AlbertModel):
    """ALBERT with one shared layer group (embedding size 128, hidden/attention dropout 0).

    Arguments are upstream's `Utils/PLBERT/config.yml` fields. `dropout` is recorded on the
    config exactly as upstream passes it, but ALBERT does not read a field of that name: its
    dropouts (`hidden_dropout_prob`, `attention_probs_dropout_prob`) keep their default 0.0, so
    PL-BERT runs without dropout in training too, as upstream's does.
    """

    def __init__(self, vocab_size: int = 178, hidden_size: int = 768, num_attention_heads: int = 12,
                 intermediate_size: int = 2048, max_position_embeddings: int = 512,
                 num_hidden_layers: int = 12, dropout: float = 0.1):
        config = AlbertConfig(vocab_size=vocab_size, hidden_size=hidden_size,
                              num_attention_heads=num_attention_heads, intermediate_size=intermediate_size,
                              max_position_embeddings=max_position_embeddings,
                              num_hidden_layers=num_hidden_layers, dropout=dropout)
        super().__init__(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids [B, T] long; attention_mask [B, T], 1 at real tokens -> [B, T, hidden_size]."""
        if attention_mask is not None and attention_mask.dim() == 2 and self.config._attn_implementation == "sdpa":
            # Given a 2-D mask, transformers asks the device whether any token is padded (a host
            # sync per call) to drop the mask; the same boolean mask prepared here gives identical
            # outputs, with or without padding, and no sync.
            batch, length = attention_mask.shape
            attention_mask = attention_mask.bool()[:, None, None, :].expand(batch, 1, length, length)
        return super().forward(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def plbert_encoder_state_dict(net: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a PL-BERT training state dict (`module.encoder.<key>`) to PLBert keys.

    Strips `module.` (DataParallel) and `encoder.`, drops the pretraining heads and the legacy
    `embeddings.position_ids` buffer; any other key raises.
    """
    encoder, foreign = {}, []
    for key, value in net.items():
        name = key.removeprefix("module.")
        if name.startswith("encoder."):
            name = name.removeprefix("encoder.")
            if name != _LEGACY_BUFFER:
                encoder[name] = value
        elif not name.startswith(_PRETRAINING_HEADS):
            foreign.append(key)
    if foreign:
        raise KeyError(f"PL-BERT checkpoint has keys outside `encoder.` and the pretraining heads: {foreign}")
    return encoder


def load_plbert_weights(model: PLBert, path: str | Path) -> PLBert:
    """Load PL-BERT weights into `model`, strictly, from upstream's `step_*.t7` (['net'] holding
    `module.encoder.*` and the heads) or a stage-0 checkpoint of this project (['net']['bert']
    holding PLBert's own keys)."""
    checkpoint = torch_load(path)  # not weights-only: a training checkpoint also holds numpy RNG states
    if not isinstance(checkpoint, dict) or "net" not in checkpoint:
        raise KeyError(f"{path}: expected a PL-BERT checkpoint with its weights under 'net'")
    net = checkpoint["net"]
    if isinstance(net.get("bert"), dict):
        state = {k: v for k, v in net["bert"].items() if k != _LEGACY_BUFFER}
    else:
        state = plbert_encoder_state_dict(net)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise KeyError(f"{path}: PL-BERT weights do not match the model; "
                       f"missing {result.missing_keys}, unexpected {result.unexpected_keys}")
    return model
