"""Which decoder step's attention row the stages read as token i (`ASRCNN.token_row_offset`)."""
import pytest
import torch
from torch import nn

from styletts2.modules.aligner import ASRCNN
from styletts2.train.batch_ops import run_aligner


class RowNumberedAligner(nn.Module):
    """Attention row r (decoder step r) is filled with r + 1, so a row's source can be read off."""

    def __init__(self, token_row_offset: int):
        super().__init__()
        self.token_row_offset = token_row_offset

    def forward(self, mels, frame_padding, tokens, mask_unk=None):
        b, n, frames = tokens.shape[0], tokens.shape[1], frame_padding.shape[1]
        steps = torch.arange(1, n + 2, dtype=torch.float32)[None, :, None].expand(b, n + 1, frames)
        return torch.zeros(b, frames, 5), torch.zeros(b, n + 1, 5), steps.clone()


@pytest.mark.parametrize("offset", [0, 1])
def test_token_i_reads_the_attention_of_step_i_plus_offset(offset):
    tokens = torch.ones(2, 4, dtype=torch.long)
    out = run_aligner(RowNumberedAligner(offset), torch.zeros(2, 80, 20), torch.tensor([20, 16]), tokens,
                      torch.tensor([4, 3]))
    assert out.attention.shape == (2, 4, 10) and out.s2s_logits.shape == (2, 4, 5)
    assert out.attention[0, :, 0].tolist() == [1 + offset + i for i in range(4)]
    assert out.attention[1, 3].abs().sum() == 0 and out.attention[1, :3, 8:].abs().sum() == 0  # padding


def test_upstream_pairing_is_the_default_and_other_offsets_are_refused():
    assert ASRCNN(hidden_dim=16, token_embedding_dim=16).token_row_offset == 1
    with pytest.raises(ValueError, match="token_row_offset"):
        ASRCNN(hidden_dim=16, token_embedding_dim=16, token_row_offset=2)
