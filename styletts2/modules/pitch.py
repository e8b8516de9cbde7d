"""Pitch extractor (JDCNet, Kum et al. 2019): a CNN + BiLSTM that regresses F0 per mel frame.

StyleTTS2 uses it with `num_class=1`: the "classifier" head outputs one value per frame, read as
F0 in Hz. Input is a mel batch with a channel axis, `pitch_extractor(mel.unsqueeze(1))`:
[B, 1, n_mels, T]. The CNN treats the mel as an image [B, 1, T, n_mels] and pools only the
frequency axis (80 -> 40 -> 20 -> 10 -> 2), so every frame keeps its own output.

Behaviour kept from upstream on purpose (checkpoints and training depend on it):
  * The voicing-detector branch (`detector_conv`, `bilstm_detector`, `detector`) has weights in
    the checkpoint but `forward` does not run it (unless `zero_unvoiced`, below).
  * The residual blocks use LeakyReLU slope 0.01 whatever `leaky_relu_slope` says.
  * `seq_len` is accepted for config compatibility; the frame count comes from the input.
  * Batch norm follows the module mode: upstream's stage 1 calls the extractor in train mode
    (under no_grad), so it normalises with batch statistics and updates the running ones.
  * The F0 output is `squeeze()`d: [B, T] normally, but [T] for a batch of one (and any other
    size-1 axis vanishes too).
  * Dropout layers in `pool_block` / `detector_conv` are never reached, so forward is
    deterministic in both modes.

`forward_with_voicing` is the forward yl4579/PitchExtractor trains the network with (stage 0): the
same F0 head before `abs`, plus the voicing detector, with dropout as a functional argument.

Not upstream's, off by default: `zero_unvoiced=True` makes `forward` also run the voicing detector
and give 0 Hz on the frames it calls unvoiced. A pitch extractor trained for minutes (the learning
benchmark's, 127 steps) detects voicing well (5 % of frames wrong) while its F0 head still gives
about 50 Hz there; the decoder's harmonic source would then sound through every consonant and
silence. A fully trained head gives near 0 Hz there, which is what upstream's decoder was trained on.
"""
import gin
import torch
from torch import nn


class JDCResBlock(nn.Module):
    """Pre-activation residual block: BN -> LeakyReLU -> max-pool the frequency axis by 2,
    then conv3x3 -> BN -> LeakyReLU -> conv3x3, plus a 1x1 conv shortcut (channels change)."""

    def __init__(self, in_channels: int, out_channels: int, leaky_relu_slope: float = 0.01):
        super().__init__()
        self.pre_conv = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.LeakyReLU(leaky_relu_slope),
            nn.MaxPool2d(kernel_size=(1, 2)),
        )
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(leaky_relu_slope),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
        )
        self.conv1by1 = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre_conv(x)
        return self.conv(x) + self.conv1by1(x)


@gin.configurable
class JDCNet(nn.Module):
    """F0 regressor. forward(mel [B, 1, n_mels, T]) -> (f0, gan_feature, pooled):
    f0 [B, T] (squeezed, see the module notes), gan_feature [B, 256, n_mels/8, T] (activated
    features before the last pooling), pooled [B, 256, T, 2] (the BiLSTM input)."""

    def __init__(self, num_class: int = 1, seq_len: int = 192, leaky_relu_slope: float = 0.01,
                 zero_unvoiced: bool = False):
        super().__init__()
        self.num_class = num_class
        self.zero_unvoiced = zero_unvoiced
        self.seq_len = seq_len
        self.conv_block = nn.Sequential(
            nn.Conv2d(1, 64, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.LeakyReLU(leaky_relu_slope),
            nn.Conv2d(64, 64, kernel_size=3, padding=1, bias=False),
        )
        self.res_block1 = JDCResBlock(64, 128)
        self.res_block2 = JDCResBlock(128, 192)
        self.res_block3 = JDCResBlock(192, 256)
        # Index layout fixed by the checkpoint; forward runs [0] and [1], then the pooling [2].
        self.pool_block = nn.Sequential(
            nn.BatchNorm2d(256),
            nn.LeakyReLU(leaky_relu_slope),
            nn.MaxPool2d(kernel_size=(1, 4)),
            nn.Dropout(0.2),
        )
        # Voicing detector: in the checkpoint; forward runs it only with zero_unvoiced.
        self.detector_conv = nn.Sequential(
            nn.Conv2d(640, 256, kernel_size=1, bias=False),
            nn.BatchNorm2d(256),
            nn.LeakyReLU(leaky_relu_slope),
            nn.Dropout(0.2),
        )
        self.bilstm_classifier = nn.LSTM(512, 256, batch_first=True, bidirectional=True)
        self.bilstm_detector = nn.LSTM(512, 256, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(512, num_class)
        self.detector = nn.Linear(512, 2)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            nn.init.xavier_normal_(m.weight)
        elif isinstance(m, nn.LSTM):
            for p in m.parameters():
                if p.dim() >= 2:
                    nn.init.orthogonal_(p)
                else:
                    nn.init.normal_(p)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _check_mel(x)
        f0, unvoiced, gan_feature, pooled = self._heads(x, dropout=0.0, voicing=self.zero_unvoiced)
        if unvoiced is not None:
            f0 = torch.where(unvoiced.unsqueeze(-1) > 0, torch.zeros_like(f0), f0)
        return f0.squeeze().abs(), gan_feature, pooled

    def forward_with_voicing(self, x: torch.Tensor, dropout: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """PitchExtractor's training forward: (f0 [B, T] before `abs`, unvoiced logit [B, T]).

        The detector reads the conv block's and the first two residual blocks' outputs, max-pooled
        to 2 frequency bins, beside the pooled features the F0 head reads: 64 + 128 + 192 + 256 =
        640 channels. `dropout` (PitchExtractor: 0.5) applies, in train mode only, where upstream's
        Dropout layers sit: on the pooled features (both heads) and after `detector_conv`. Its two
        outputs are summed into one logit, read as "unvoiced" (PitchExtractor's silence target).
        """
        _check_mel(x)
        f0, unvoiced, _, _ = self._heads(x, dropout, voicing=True)
        return f0[..., 0], unvoiced

    def _heads(self, x: torch.Tensor, dropout: float, voicing: bool):
        """(f0 [B, T, num_class] before `abs`, unvoiced logit [B, T] or None, gan_feature, pooled)."""
        batch, n_frames = x.shape[0], x.shape[-1]
        x = x.float().transpose(-1, -2)  # [B, 1, T, n_mels]
        conv = self.conv_block(x)
        res1 = self.res_block1(conv)
        res2 = self.res_block2(res1)
        activated = self.pool_block[1](self.pool_block[0](self.res_block3(res2)))
        pooled = self.pool_block[2](activated)  # [B, 256, T, 2]
        if dropout:
            pooled = nn.functional.dropout(pooled, dropout, self.training)

        def frames(features: torch.Tensor) -> torch.Tensor:  # [B, 256, T, 2] -> [B, T, 512]
            return features.permute(0, 2, 1, 3).reshape(batch, n_frames, 512)

        f0 = self.classifier(self.bilstm_classifier(frames(pooled))[0]).view(batch, n_frames, self.num_class)
        unvoiced = None
        if voicing:
            # upstream's maxpool1..3 (kernels 40, 20, 10 at 80 mels): each branch down to 2 frequency bins
            side = [nn.functional.max_pool2d(t, (1, t.shape[-1] // 2)) for t in (conv, res1, res2)]
            detected = self.detector_conv[2](self.detector_conv[1](self.detector_conv[0](torch.cat(side + [pooled], 1))))
            if dropout:
                detected = nn.functional.dropout(detected, dropout, self.training)
            unvoiced = self.detector(self.bilstm_detector(frames(detected))[0]).sum(-1)
        return f0, unvoiced, activated.transpose(-1, -2), pooled


def _check_mel(x: torch.Tensor) -> None:
    if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] // 32 != 2:
        raise ValueError("JDCNet expects a mel batch with a channel axis [B, 1, n_mels, T] "
                         f"with 64 <= n_mels < 96 (80 in StyleTTS2), got {tuple(x.shape)}")
