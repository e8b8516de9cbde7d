"""Upstream's exact float32 inference path, as the export contract's graphs (`graph_contract`).

This is the one place that holds it. These graphs run a model as it was trained (NOT passed through
`graphs.prepare_for_export`) the way upstream's inference notebooks do: weight-norm hooks, packed
LSTMs, complex `torch.stft`/`istft`, the float32 harmonic phase, python-number knobs (the sampler
skips its guidance pass at embedding_scale 1, as upstream's does) and source noise drawn from
torch's generator, seeded here by the decoder's `noise_seed`. With the same weights and inputs they
give upstream's waveform bit for bit (tests/test_pipeline_parity.py). The export graphs
(`styletts2.graphs`) cannot: ONNX has no complex STFT, and they draw their noise in-graph.

They run, like every other graph set, in an executor (`TorchExecutor.fidelity`), driven by the one
synthesizer (`runtime.synthesizer.Synthesizer`; `styletts2.inference.TorchSynthesizer` builds it
for a model in memory). Batches of one, as the synthesizer runs them.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .graphs import DiffusionSamplerGraph, StyleEncoderGraph, has_style_encoders
from .modules.masks import length_to_mask
from .modules.prosody_predictor import add_tail_frames
from .synthesis_limits import check_piece_frames

SYNTHESIS_MODULES = ("bert", "bert_encoder", "predictor", "decoder", "text_encoder", "diffusion")


def _one_item(tensor: Tensor, name: str) -> None:
    if tensor.shape[0] != 1:
        raise ValueError(f"the fidelity graphs run one item at a time; {name} has a batch of {tensor.shape[0]}")


class FidelityTextEncoder(nn.Module):
    """tokens [1, T], token_lengths [1] -> t_en [1, C, T], bert [1, T, E], d_en [1, C, T]."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.text_encoder, self.bert, self.bert_encoder = model.text_encoder, model.bert, model.bert_encoder

    def forward(self, tokens: Tensor, token_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        _one_item(tokens, "tokens")
        mask = length_to_mask(token_lengths)
        t_en = self.text_encoder(tokens, token_lengths, mask)
        bert = self.bert(tokens, attention_mask=(~mask).int())
        return t_en, bert, self.bert_encoder(bert).transpose(-1, -2)


class FidelitySampler(DiffusionSamplerGraph):
    """The export sampler's inputs and output; the scale goes to the sampler as a python number, so
    at 1 it makes one network pass per step, as upstream's does."""

    def forward(self, bert: Tensor, noise: Tensor, step_noises: Tensor, embedding_scale: Tensor | float,
                reference_style: Tensor | None = None) -> Tensor:
        return super().forward(bert, noise, step_noises, float(embedding_scale), reference_style)


class FidelityDecoder(nn.Module):
    """t_en, d_en, style [1, 2S], speed [], token_lengths [1], noise_seed [], tail_frames []
    -> waveform [1, samples], durations [1, T]: durations, the alignment expansion, the HiFi-GAN
    one-frame delay, F0 and energy, the vocoder, its tail trim."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.predictor, self.decoder, self.style_dim = model.predictor, model.decoder, int(model.style_dim)

    def forward(self, t_en: Tensor, d_en: Tensor, style: Tensor, speed: Tensor | float, token_lengths: Tensor,
                noise_seed: Tensor | int, tail_frames: Tensor | int) -> tuple[Tensor, Tensor]:
        _one_item(style, "style")
        acoustic, prosodic = style[:, :self.style_dim], style[:, self.style_dim:]
        mask = length_to_mask(token_lengths)
        d = self.predictor.encode(d_en, prosodic, token_lengths, mask)
        durations = add_tail_frames(self.predictor.durations(d, speed=float(speed)), int(tail_frames))[0]
        check_piece_frames(int(durations.sum()))  # before the decoder allocates for them
        en = d.transpose(-1, -2).repeat_interleave(durations, dim=-1)  # == d^T @ one-hot alignment
        asr = t_en.repeat_interleave(durations, dim=-1)
        en, asr = self.decoder.delay_aligned(en), self.decoder.delay_aligned(asr)
        devices = [style.device] if style.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the source noise: torch's generator, seeded per piece
            torch.manual_seed(int(noise_seed))
            F0, N = self.predictor.prosody(en, prosodic)
            wave = self.decoder(asr, F0, N, acoustic).reshape(-1)
        return self.decoder.trim_tail(wave)[None], durations[None]


def fidelity_graphs(model: nn.Module, steps: int) -> dict[str, nn.Module]:
    """{graph name: module} over `model` (shared, not copied): the contract's required graphs, and
    the style encoder where the model has one. No unguided sampler: the sampler itself makes one
    pass per step at embedding_scale 1."""
    missing = [name for name in SYNTHESIS_MODULES if not hasattr(model, name)]
    if missing:
        raise ValueError(f"model lacks the inference module(s) {missing}")
    graphs = {"text_encoder": FidelityTextEncoder(model), "diffusion_sampler": FidelitySampler(model, steps),
              "decoder": FidelityDecoder(model)}
    if has_style_encoders(model):
        graphs["style_encoder"] = StyleEncoderGraph(model)
    return {name: graph.eval() for name, graph in graphs.items()}
