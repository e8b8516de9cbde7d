"""Export-friendly forms of StyleTTS2's inference graphs (the contract in the export README/model.json).

Each wrapper computes what upstream's exact path (`styletts2.fidelity`) computes for its graph,
written with ops that trace into graphs with dynamic batch and length axes:

- lengths never leave the graph as Python numbers: masks come from `arange < length` comparisons and
  the duration -> frame expansion from a one-hot alignment built from a cumulative sum;
- padded bidirectional LSTMs run as two one-way LSTMs, the backward one over each sequence reversed
  within its own length (a gather), which is what `pack_padded_sequence` computes, without it;
- the diffusion sampler's steps are unrolled at trace time and every noise is an input;
- the decoder's source noise comes from an integer counter hash of `noise_seed` (`source_noise`), the
  same bits in torch and in onnxruntime, one normal per sample along the direction the source reads.

`prepare_for_export` folds the weight/spectral-norm hooks and switches the decoder to its exportable
settings; the wrappers share (do not copy) the model's modules.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from styletts2.modules.norms import fold_norms
from styletts2.modules.nsf import SineGen
from styletts2.modules.prosody_predictor import add_tail_frames, frames_per_token
from styletts2.modules.stft import STFT

# Source-noise hash: a 4-round Feistel network on 16-bit halves with a squaring round function.
# Only int64 add/mul/div/mod (ONNX has no int64 XOR before opset 18, and the TorchScript-based
# exporter cannot emit it); every product stays below 2**50, so nothing overflows anywhere.
_HALF = 2 ** 16
_WORD = 2 ** 32
_FEISTEL_ROUNDS = 4

DECODER_NOISE_DOC = {
    "scheme": "feistel16-box-muller-v2-merged",
    "description": (
        "The NSF source noise [B, samples, 9] is made in-graph from noise_seed as z * d: z [B, samples, 1] "
        "standard normal, d = w / |w| for w the weight [1, 9] of the source's merging linear layer. The source "
        "only uses the noise through that layer, where w . (z d) = |w| z has the distribution of w . n for "
        "n ~ N(0, I): the same output distribution as 9 independent draws, at a ninth of the cost. "
        "Batch item b uses key k = (noise_seed + b) mod 2^32 (so item b of a batch draws what a batch of one "
        "draws with seed noise_seed + b). Sample n takes two 32-bit words w_j = H(2n + j, k), j = 0, 1, and "
        "u_j = (w_j + 0.5) / 2^32, z = sqrt(-2 ln u_0) cos(2 pi u_1) computed in float64, then cast to float32. "
        "H(c, k): split c into 16-bit halves L = c div 2^16, R = c mod 2^16 and k into k_hi, k_lo; "
        "for r = 0..3: K = (k_lo (2r + 40503) + k_hi (2r + 9973) + r * 40503) mod 2^16, x = R + K, "
        "F = ((x^2 * 22609 + x * 32587) div 2^16) mod 2^16, (L, R) = (R, (L + F) mod 2^16); H = L * 2^16 + R."),
}


def prepare_for_export(model: nn.Module) -> nn.Module:
    """Put `model` (in place) into the state the graphs are traced from.

    Folds weight/spectral norm hooks (the exporters cannot trace them); iSTFTNet: the Conv1d DFT
    (complex torch.stft/istft do not export), computed so that torch and onnxruntime hand the
    network the same source phase (`ExportableSTFT`); decoder source: `deterministic` (no in-module
    draws: the noise is passed in) and computed in float64 (`ExportableSource`; the harmonic phase
    drifts by ~1e-2 rad over 10 s of audio in float32, differently in torch and onnxruntime).
    """
    fold_norms(model)
    decoder = model.decoder
    if hasattr(decoder.generator, "stft"):  # iSTFTNet
        decoder.generator.stft = ExportableSTFT(decoder.generator.stft)
    decoder.generator.m_source = ExportableSource(decoder.generator.m_source)
    decoder.deterministic = True
    return model.eval()


def atan2(y: Tensor, x: Tensor) -> Tensor:
    """atan2 written with atan and selects, so torch and onnxruntime evaluate the same formula.

    The TorchScript exporter's own atan2 returns -pi where y is +-0 and x < 0; torch returns +pi for
    +0 (what complex torch.stft hands the iSTFTNet at its real DC and Nyquist bins) and -pi for -0, and
    a Conv1d DFT makes either zero. Here y = +-0, x < 0 gives +pi, like torch.stft's angle.
    """
    zero = x == 0
    base = torch.atan(y / torch.where(zero, torch.ones_like(x), x))
    left = torch.where(y >= 0, base + math.pi, base - math.pi)
    on_axis = torch.where(y > 0, torch.full_like(y, math.pi / 2),
                          torch.where(y < 0, torch.full_like(y, -math.pi / 2), torch.zeros_like(y)))
    return torch.where(zero, on_axis, torch.where(x < 0, left, base))


class ExportableSTFT(STFT):
    """The iSTFTNet's source STFT for export: the DFT of each frame in float64 (a gather of frames and
    a matmul with the conv backend's bases), the phase by `atan2` above in float32.

    The network reads the raw phase, which jumps by 2 pi where a bin crosses the negative real axis;
    low-magnitude bins (between the harmonics) cross it on float32 rounding noise, so a float32 DFT
    puts many such jumps at different places in torch and onnxruntime (audible bursts). From float64
    real and imaginary parts, rounded once to float32, both backends see the same numbers.
    Frame 0 is made exactly real: it is centred on sample 0 of a reflect-padded signal under a
    symmetric window whose first tap is 0, so its spectrum is real in exact arithmetic and only the
    sign of rounding noise would choose +pi or -pi for its negative bins.
    """

    def __init__(self, stft: STFT):
        super().__init__(stft.n_fft, stft.hop_length, backend="conv")
        basis = self.analysis_basis.squeeze(1).t().double()  # [n_fft, 2 * n_bins]
        self.register_buffer("analysis_matrix", basis, persistent=False)
        self.to(stft.window.device)

    def transform(self, x: Tensor) -> tuple[Tensor, Tensor]:
        pad = self.n_fft // 2
        padded = F.pad(x.to(torch.float64).unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        n_frames = (padded.shape[1] - self.n_fft) // self.hop_length + 1
        index = (torch.arange(n_frames, device=x.device) * self.hop_length).unsqueeze(1) \
            + torch.arange(self.n_fft, device=x.device)
        spectrum = (padded[:, index] @ self.analysis_matrix).transpose(1, 2).to(x.dtype)  # [B, 2 * bins, frames]
        real, imag = spectrum.chunk(2, dim=1)
        imag = torch.cat([torch.zeros_like(imag[..., :1]), imag[..., 1:]], dim=-1)
        return torch.sqrt(real * real + imag * imag), atan2(imag, real)


class ExportableSource(nn.Module):
    """SourceModuleHnNSF with the harmonics, the noise, the merging linear layer and tanh in float64
    (rounded to float32 once, at the end), for the reason given in `ExportableSTFT`: the iSTFTNet
    reads the phase of this signal's STFT, which float32 rounding differences would flip."""

    def __init__(self, source: nn.Module):
        super().__init__()
        self.l_sin_gen = ExportableSineGen(source.l_sin_gen)
        self.l_linear = source.l_linear

    def forward(self, f0: Tensor, noise: Tensor | None = None,
                phase_offsets: Tensor | None = None) -> tuple[Tensor, Tensor]:
        sines, uv = self.l_sin_gen(f0, noise, phase_offsets)  # float64 sines
        weight, bias = self.l_linear.weight.to(torch.float64), self.l_linear.bias.to(torch.float64)
        return torch.tanh(F.linear(sines, weight, bias)).to(f0.dtype), uv


class ExportableSineGen(SineGen):
    """SineGen with `precise_phase` and its two linear resamplings written out as gathers and
    float64 arithmetic (onnxruntime has no float64 Resize, and a float32 Resize would round the
    sample positions differently from torch). Equal to SineGen(precise_phase=True) to ~1e-15; the
    sines stay float64 (`ExportableSource` rounds them once, after merging).

    torch's linear interpolation (align_corners=False) by 1/scale reads position scale*j + (scale-1)/2
    for output j, i.e. averages samples scale*j + scale/2 - 1 and scale*j + scale/2 (scale even);
    by scale it reads (i + 0.5) / scale - 0.5, clamped at 0.
    """

    def __init__(self, sine_gen: SineGen):
        super().__init__(sine_gen.sampling_rate, sine_gen.upsample_scale, sine_gen.harmonic_num, sine_gen.sine_amp,
                         sine_gen.noise_std, sine_gen.voiced_threshold, precise_phase=True,
                         deterministic=sine_gen.deterministic)
        if self.upsample_scale % 2:
            raise ValueError(f"ExportableSineGen needs an even upsample scale, got {self.upsample_scale}")

    def _sines(self, f0: Tensor, phase_offsets: Tensor) -> Tensor:
        work = torch.float64
        scale = self.upsample_scale
        orders = torch.arange(1, self.dim + 1, device=f0.device, dtype=work)
        increment = (f0.to(work) * orders / self.sampling_rate) % 1  # [B, L, dim]
        first = increment[:, :1] + phase_offsets.to(work).unsqueeze(1)
        increment = torch.cat([first, increment[:, 1:]], dim=1)
        # Down by `scale`: the mean of the two samples around each frame's centre.
        frames = increment.shape[1] // scale
        centre = torch.arange(frames, device=f0.device) * scale + (scale // 2 - 1)
        per_frame = 0.5 * increment[:, centre] + 0.5 * increment[:, centre + 1]  # [B, frames, dim]
        phase = torch.cumsum(per_frame, dim=1) * 2 * math.pi * scale
        # Up by `scale`: linear between frame phases, as F.interpolate computes positions.
        position = (torch.arange(frames * scale, device=f0.device, dtype=work) + 0.5) * (1.0 / scale) - 0.5
        position = position.clamp(min=0)
        lower = position.floor()
        weight = (position - lower).view(1, -1, 1)
        lower = lower.long()
        upper = (lower + 1).clamp(max=frames - 1)
        sines = torch.sin((1 - weight) * phase[:, lower] + weight * phase[:, upper])
        return sines * self.sine_amp  # float64: ExportableSource rounds once, after merging


def padding_mask(lengths: Tensor, width: int | Tensor) -> Tensor:
    """[B] lengths -> [B, width] bool, True at padding (positions >= length)."""
    positions = torch.arange(width, device=lengths.device)
    return positions.unsqueeze(0) >= lengths.unsqueeze(1)


def _one_way(lstm: nn.LSTM, suffix: str) -> nn.LSTM:
    """One direction of a single-layer bidirectional LSTM as its own (unidirectional) LSTM."""
    one = nn.LSTM(lstm.input_size, lstm.hidden_size, num_layers=1, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(one, name).copy_(getattr(lstm, name + suffix))
    return one.to(lstm.weight_ih_l0.device).eval()


class MaskedBiLSTM(nn.Module):
    """A batch-first single-layer BiLSTM over each sequence's true length, zero at padding.

    Equal to `styletts2.modules.masks.packed_lstm` (bit for bit for one sequence; a packed batch
    shrinks as sequences end, so its matmuls round differently): the forward direction never
    reads past position t anyway; the backward one runs over the sequence reversed within its length,
    so it starts at the last real token with a zero state, as the packed sequence does.
    """

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        if not (lstm.bidirectional and lstm.num_layers == 1 and lstm.batch_first):
            raise ValueError("MaskedBiLSTM takes a batch-first, single-layer, bidirectional LSTM")
        self.forward_lstm = _one_way(lstm, "")
        self.backward_lstm = _one_way(lstm, "_reverse")

    def forward(self, x: Tensor, lengths: Tensor, pad: Tensor) -> Tensor:
        """x [B, T, C], lengths [B], pad [B, T] (True at padding) -> [B, T, 2H]."""
        positions = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
        # Position t of the reversed sequence reads length-1-t; padding stays where it is.
        source = torch.where(pad, positions, lengths.unsqueeze(1) - 1 - positions)
        index = source.unsqueeze(-1)
        forward_out = self.forward_lstm(x)[0]
        reversed_in = torch.gather(x, 1, index.expand(-1, -1, x.shape[2]))
        backward_rev = self.backward_lstm(reversed_in)[0]
        backward_out = torch.gather(backward_rev, 1, index.expand(-1, -1, backward_rev.shape[2]))
        return torch.cat([forward_out, backward_out], dim=-1).masked_fill(pad.unsqueeze(-1), 0.0)


# 1. text_encoder -------------------------------------------------------------------------------------

class TextEncoderGraph(nn.Module):
    """tokens [B, T] int64, token_lengths [B] int64 -> t_en [B, C, T], bert [B, T, E], d_en [B, C, T]."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.text_encoder = model.text_encoder
        self.lstm = MaskedBiLSTM(model.text_encoder.lstm)
        self.bert = model.bert
        self.bert_encoder = model.bert_encoder

    def forward(self, tokens: Tensor, token_lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mask = padding_mask(token_lengths, tokens.shape[1])
        pad = mask.unsqueeze(1)
        # TextEncoder.forward with the packed LSTM replaced by its masked equivalent.
        x = self.text_encoder.embedding(tokens).transpose(1, 2).masked_fill(pad, 0.0)
        for block in self.text_encoder.cnn:
            x = block(x).masked_fill(pad, 0.0)
        t_en = self.lstm(x.transpose(1, 2), token_lengths, mask).transpose(1, 2)
        bert = self.bert(tokens, attention_mask=(~mask).int())
        d_en = self.bert_encoder(bert).transpose(-1, -2)
        return t_en, bert, d_en


# 2. diffusion_sampler --------------------------------------------------------------------------------

class DiffusionSamplerGraph(nn.Module):
    """bert [B, T, E], noise [B, 1, 2S], step_noises [steps-1, B, 1, 2S], embedding_scale [],
    (multispeaker) reference_style [B, 2S] -> style [B, 2S], the raw sample (no mixing or blending).

    The scale is a tensor, so both guidance passes always run (the graph cannot branch on it).
    """

    def __init__(self, model: nn.Module, steps: int):
        super().__init__()
        if steps < 2:
            raise ValueError(f"diffusion steps must be at least 2, got {steps}")
        self.diffusion = model.diffusion
        self.steps = steps
        self.multispeaker = bool(model.multispeaker)

    def forward(self, bert: Tensor, noise: Tensor, step_noises: Tensor, embedding_scale: Tensor | float,
                reference_style: Tensor | None = None) -> Tensor:
        if self.multispeaker and reference_style is None:
            raise ValueError("the multispeaker sampler needs reference_style [B, 2S]")
        style = self.diffusion.sample(noise, bert, num_steps=self.steps, embedding_scale=embedding_scale,
                                      features=reference_style if self.multispeaker else None,
                                      step_noises=step_noises)
        return style.squeeze(1)


class UnguidedSamplerGraph(DiffusionSamplerGraph):
    """bert, noise, step_noises (, reference_style) -> style: the sampler at embedding_scale 1, i.e.
    without classifier-free guidance, one network pass per step (the guided graph's second pass is
    then multiplied by zero). This is what the torch path and upstream run at the default scale; the
    runtime takes this graph whenever the scale is 1."""

    def forward(self, bert: Tensor, noise: Tensor, step_noises: Tensor,
                reference_style: Tensor | None = None) -> Tensor:
        return super().forward(bert, noise, step_noises, 1.0, reference_style)


# 3. decoder ------------------------------------------------------------------------------------------

def _feistel_hash(counter: Tensor, key: Tensor) -> Tensor:
    """Counters in [0, 2^32) (int64) and keys in [0, 2^32) (broadcastable) -> 32-bit words (int64)."""
    left, right = torch.div(counter, _HALF, rounding_mode="floor"), counter % _HALF
    key_hi, key_lo = torch.div(key, _HALF, rounding_mode="floor"), key % _HALF
    for r in range(_FEISTEL_ROUNDS):
        x = right + (key_lo * (2 * r + 40503) + key_hi * (2 * r + 9973) + r * 40503) % _HALF
        f = torch.div(x * x * 22609 + x * 32587, _HALF, rounding_mode="floor") % _HALF
        left, right = right, (left + f) % _HALF
    return left * _HALF + right


def seeded_normal(seed: Tensor, batch: int | Tensor, samples: int | Tensor) -> Tensor:
    """Standard-normal noise [batch, samples] (float32), a pure function of the int64 `seed` (see
    DECODER_NOISE_DOC): the integer ops are exact in every backend and the float64 Box-Muller agrees
    to the last float32 bit in practice."""
    device = seed.device
    key = (seed.reshape(1) % _WORD + torch.arange(batch, device=device)) % _WORD  # [B]
    counter = torch.arange(samples, device=device).unsqueeze(1) * 2 + torch.arange(2, device=device)  # [L, 2]
    words = _feistel_hash(counter.unsqueeze(0), key.view(-1, 1, 1))  # [B, L, 2]
    uniform = (words.to(torch.float64) + 0.5) / _WORD
    u0, u1 = uniform.unbind(-1)
    normal = torch.sqrt(-2.0 * torch.log(u0)) * torch.cos((2 * math.pi) * u1)
    return normal.to(torch.float32)


def noise_direction(decoder: nn.Module) -> Tensor:
    """d = w / |w| [channels], w the NSF source's merging weight (see DECODER_NOISE_DOC)."""
    weight = decoder.generator.m_source.l_linear.weight.detach().reshape(-1).float()
    return weight / weight.norm().clamp(min=torch.finfo(torch.float32).tiny)


def source_noise(seed: Tensor, batch: int | Tensor, samples: int | Tensor, direction: Tensor) -> Tensor:
    """The decoder's source noise [batch, samples, channels]: one seeded normal per sample along
    `direction` (`noise_direction`), which the source's merging layer cannot tell from independent
    normals per channel."""
    return seeded_normal(seed, batch, samples).unsqueeze(-1) * direction


class DurationEncoderGraph(nn.Module):
    """`DurationEncoder.forward` with masked (not packed) LSTMs."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.lstms = nn.ModuleList(MaskedBiLSTM(lstm) for lstm in encoder.lstms[0::2])
        self.norms = nn.ModuleList(encoder.lstms[1::2])

    def forward(self, x: Tensor, style: Tensor, lengths: Tensor, mask: Tensor) -> Tensor:
        pad = mask.unsqueeze(-1)
        s = style.unsqueeze(1).expand(-1, x.shape[-1], -1)
        h = torch.cat([x.transpose(1, 2), s], dim=-1).masked_fill(pad, 0.0)
        for lstm, norm in zip(self.lstms, self.norms):
            h = lstm(h, lengths, mask)  # eval: no dropout
            h = torch.cat([norm(h, style), s], dim=-1).masked_fill(pad, 0.0)
        return h


def alignment_matrix(durations: Tensor) -> Tensor:
    """durations [B, T] int64 -> one-hot alignment [B, T, F] float32, F = the longest item's total:
    frame f belongs to token t when ends[t-1] <= f < ends[t]. Frames past an item's own total
    belong to no token (all-zero columns)."""
    ends = torch.cumsum(durations, dim=1)  # [B, T]
    starts = ends - durations
    frames = torch.arange(ends.max(), device=durations.device).view(1, 1, -1)  # [1, 1, F]
    inside = (frames >= starts.unsqueeze(-1)) & (frames < ends.unsqueeze(-1))
    return inside.to(torch.float32)


class DecoderGraph(nn.Module):
    """t_en [B, C, T], d_en [B, C, T], style [B, 2S] ([acoustic | prosodic], already mixed), speed [],
    token_lengths [B], noise_seed [], tail_frames [] -> waveform [B, samples], durations [B, T]
    (0 at padding; tail_frames more on each item's last token).

    An item's own samples are its first sum(durations) * hop_length (minus the HiFi-GAN tail trim);
    the rest of a padded batch row is filler.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.predictor = model.predictor
        self.duration_encoder = DurationEncoderGraph(model.predictor.text_encoder)
        self.duration_lstm = MaskedBiLSTM(model.predictor.lstm)
        self.decoder = model.decoder
        self.register_buffer("noise_direction", noise_direction(model.decoder), persistent=False)
        self.style_dim = model.style_dim

    def forward(self, t_en: Tensor, d_en: Tensor, style: Tensor, speed: Tensor, token_lengths: Tensor,
                noise_seed: Tensor, tail_frames: Tensor) -> tuple[Tensor, Tensor]:
        mask = padding_mask(token_lengths, t_en.shape[2])
        acoustic, prosodic = style[:, :self.style_dim], style[:, self.style_dim:]

        d = self.duration_encoder(d_en, prosodic, token_lengths, mask)
        x = self.duration_lstm(d, token_lengths, mask)
        durations = frames_per_token(self.predictor.expected_frames(x) / speed)
        durations = add_tail_frames(durations, tail_frames, token_lengths).masked_fill(mask, 0)

        # x @ one-hot alignment copies values exactly (x * 1 plus zeros), like repeat_interleave,
        # and keeps the channel axis static for ONNX shape inference (a gather does not).
        alignment = alignment_matrix(durations).to(d.dtype)
        en = d.transpose(-1, -2) @ alignment
        asr = t_en @ alignment
        en, asr = self.decoder.delay_aligned(en), self.decoder.delay_aligned(asr)
        F0, N = self.predictor.prosody(en, prosodic)
        batch, samples, _ = self.decoder.noise_shape(F0)
        noise = source_noise(noise_seed, batch, samples, self.noise_direction).to(F0.dtype)
        wave = self.decoder(asr, F0, N, acoustic, noise=noise).squeeze(1)
        wave = self.decoder.trim_tail(wave)
        return wave, durations


# 4. style_encoder ------------------------------------------------------------------------------------

class StyleEncoderGraph(nn.Module):
    """mel [B, 80, frames] (>= 65 frames) -> reference_style [B, 2S] = [style_encoder | predictor_encoder]."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.style_encoder = model.style_encoder
        self.predictor_encoder = model.predictor_encoder

    def forward(self, mel: Tensor) -> Tensor:
        mel = mel.unsqueeze(1)
        return torch.cat([self.style_encoder(mel), self.predictor_encoder(mel)], dim=1)


def has_style_encoders(model: nn.Module) -> bool:
    """Whether the model can read a reference clip's styles (its style_encoder graph)."""
    return hasattr(model, "style_encoder") and hasattr(model, "predictor_encoder")


def build_graphs(model: nn.Module, steps: int) -> dict[str, nn.Module]:
    """{graph name: wrapper} for a model already passed through `prepare_for_export`."""
    graphs = {
        "text_encoder": TextEncoderGraph(model),
        "diffusion_sampler": DiffusionSamplerGraph(model, steps),
        "diffusion_sampler_unguided": UnguidedSamplerGraph(model, steps),
        "decoder": DecoderGraph(model),
    }
    if has_style_encoders(model):
        graphs["style_encoder"] = StyleEncoderGraph(model)
    return {name: graph.eval() for name, graph in graphs.items()}
