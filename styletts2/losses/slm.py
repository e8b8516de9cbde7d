"""Speech-language-model (WavLM) losses: feature matching in WavLM's hidden states, and the
least-squares GAN terms of the WavLM discriminator ``wd`` (upstream losses.WavLMLoss).

The WavLM model is passed in (e.g. ``transformers.WavLMModel.from_pretrained(...)`` loaded by the
caller; upstream downloads ``microsoft/wavlm-base-plus`` here). It is kept frozen and in eval mode
(upstream never trains it and never leaves eval mode), and audio is resampled from the TTS rate to
the SLM rate first. Waveforms may be ``[B, T]`` or ``[B, 1, T]``.
"""
from __future__ import annotations

import gin
import torch
from torch import nn

from styletts2.losses.resample import SincResample


@gin.configurable
class WavLMLoss(nn.Module):
    """Args:
        wavlm: module called as ``wavlm(input_values=[B, T16], output_hidden_states=True)`` whose output
            has ``hidden_states``, a tuple of ``[B, frames, hidden]`` (transformers' WavLMModel).
        wd: the WavLM discriminator, ``[B, n_states * hidden, frames] -> scores``.
        model_sr / slm_sr: TTS and SLM sample rates.
        weight: upstream's ``lambda_slm`` (1), for the feature-matching term ``forward``.
    """

    def __init__(self, wavlm: nn.Module, wd: nn.Module, model_sr: int = 24000, slm_sr: int = 16000,
                 weight: float = 1.0):
        super().__init__()
        self.wavlm = wavlm.eval().requires_grad_(False)
        self.wd = wd
        self.resample = SincResample(model_sr, slm_sr)
        self.weight = weight

    def train(self, mode: bool = True) -> "WavLMLoss":
        super().train(mode)
        self.wavlm.eval()  # dropout and layer drop stay off: the SLM is a fixed feature extractor
        return self

    def hidden_states(self, wave: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """All WavLM hidden states (embeddings + every layer) of a TTS-rate waveform batch."""
        wave_16k = self.resample(wave.reshape(-1, wave.shape[-1]))
        return self.wavlm(input_values=wave_16k, output_hidden_states=True).hidden_states

    def discriminator_features(self, wave: torch.Tensor) -> torch.Tensor:
        """``[B, n_states * hidden, frames]``: hidden states stacked layer-major along channels."""
        states = torch.stack(self.hidden_states(wave), dim=1)                # [B, L, frames, H]
        return states.transpose(-1, -2).flatten(start_dim=1, end_dim=2)

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Feature matching: sum over hidden states of the mean absolute difference."""
        with torch.no_grad():
            real_states = self.hidden_states(real)
        fake_states = self.hidden_states(fake)
        total = 0
        for real_state, fake_state in zip(real_states, fake_states):
            total = total + torch.mean(torch.abs(real_state - fake_state))
        return total.mean()

    def generator(self, fake: torch.Tensor) -> torch.Tensor:
        """LSGAN generator term ``mean((1 - wd(fake))^2)``; gradients reach ``fake`` through WavLM."""
        return torch.mean((1 - self.wd(self.discriminator_features(fake))) ** 2)

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """LSGAN discriminator term ``mean((1 - wd(real))^2) + mean(wd(fake)^2)``; trains ``wd`` only."""
        with torch.no_grad():
            real_features = self.discriminator_features(real)
            fake_features = self.discriminator_features(fake)
        return torch.mean((1 - self.wd(real_features)) ** 2) + torch.mean(self.wd(fake_features) ** 2)

    def discriminator_forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Raw ``wd`` scores of a waveform (used for the SLM discriminator's regularisers)."""
        with torch.no_grad():
            features = self.discriminator_features(wave)
        return self.wd(features)
