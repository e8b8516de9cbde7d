"""Upstream's own inference as a benchmark backend, in a process of its own.

    python -m styletts2.bench.upstream_worker --upstream PATH --config CONFIG.yml --weights W.pth \
        [--steps 5] [--threads 2]

`bench/rtf.py --upstream PATH` starts it (`backends.UpstreamExecutor`) so that the comparison with
the original code can be reproduced by anyone who has an upstream checkout. Upstream's modules are
imported from the checkout (`upstream_code`) and built by its `build_model` from its config; the
weights (`W.pth`, upstream's checkpoint layout) are loaded strictly.

The graphs are the steps of upstream's inference notebooks (Demo/Inference_LJSpeech.ipynb,
Inference_LibriTTS.ipynb), cut where the export contract cuts them, so that every backend is timed
over the same work:
- text_encoder: `text_encoder`, `bert`, `bert_encoder`;
- diffusion_sampler: `DiffusionSampler(ADPM2Sampler, KarrasSchedule(1e-4, 3, 9))`; the noise ADPM2
  adds after each step (`torch.randn_like`) is read from the `step_noises` input instead (`_given_noises`),
  as every backend's sampler does, so that all sample the same style and render the same length;
- decoder: the predictor's text encoder and duration LSTM, the notebook's alignment matrix and its
  matrix products, `F0Ntrain`, the decoder (HiFi-GAN: the one-frame delay and the 50-sample trim of
  the LibriTTS notebook). Two inputs the notebooks lack, so that lengths match the other backends:
  durations are divided by `speed` before rounding, and `tail_frames` replaces the LJSpeech
  notebook's fixed 5 extra frames on the last token.

Protocol: pickled `(graph, feeds)` requests on stdin, pickled `(outputs, seconds, peak RSS MB)` replies
on the process's original stdout; `seconds` is the graph's compute time measured here, without the pipe.
Everything the model code prints goes to stderr. A `None` request ends the process.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import sys
import time

import numpy as np
import torch


def _mask(lengths: torch.Tensor) -> torch.Tensor:
    """True on padding (the notebooks' `length_to_mask`)."""
    positions = torch.arange(int(lengths.max())).unsqueeze(0).expand(lengths.shape[0], -1).type_as(lengths)
    return torch.gt(positions + 1, lengths.unsqueeze(1))


@contextlib.contextmanager
def _given_noises(noises: torch.Tensor):
    """`torch.randn_like` returns `noises[0]`, `noises[1]`, ... in turn (each of the asked shape),
    and every one must be used: the sampler's step noise comes from the caller, not the generator."""
    pending, original = list(noises), torch.randn_like

    def next_noise(like: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if not pending:
            raise RuntimeError("the sampler asked for more step noises than step_noises holds")
        return pending.pop(0).reshape(like.shape).to(like.dtype)

    torch.randn_like = next_noise
    try:
        yield
    finally:
        torch.randn_like = original
    if pending:
        raise RuntimeError(f"the sampler left {len(pending)} of the step noises unused")


class UpstreamGraphs:
    """Upstream's model and sampler, run graph by graph (one item at a time, as the notebooks do)."""

    def __init__(self, upstream: str, config: str, weights: str, steps: int):
        from styletts2.bench.upstream_code import build_upstream_model, import_upstream

        import_upstream(upstream)
        from Modules.diffusion.sampler import ADPM2Sampler, DiffusionSampler, KarrasSchedule  # upstream's

        self.model, config_dict = build_upstream_model(os.path.abspath(config), upstream)
        params = config_dict["model_params"]
        self.multispeaker = bool(params["multispeaker"])
        self.hifigan = params["decoder"]["type"] == "hifigan"
        self.style_dim = int(params["style_dim"])
        net = torch.load(weights, map_location="cpu", weights_only=False)["net"]
        for key, module in self.model.items():
            if key in net:
                module.load_state_dict(net[key])  # strict: a mismatch names every key
            module.eval()
        self.sampler = DiffusionSampler(self.model.diffusion.diffusion, sampler=ADPM2Sampler(),
                                        sigma_schedule=KarrasSchedule(sigma_min=0.0001, sigma_max=3.0, rho=9.0),
                                        clamp=False)
        self.steps = steps

    def run(self, graph: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return getattr(self, graph.removesuffix("_unguided"))({k: torch.from_numpy(np.asarray(v))
                                                                   for k, v in feeds.items()})

    def text_encoder(self, f: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        m, tokens, lengths = self.model, f["tokens"], f["token_lengths"]
        mask = _mask(lengths)
        t_en = m.text_encoder(tokens, lengths, mask)
        bert = m.bert(tokens, attention_mask=(~mask).int())
        # upstream's load_plbert wraps ALBERT in CustomAlbert, whose forward returns this field
        bert = bert if isinstance(bert, torch.Tensor) else bert.last_hidden_state
        d_en = m.bert_encoder(bert).transpose(-1, -2)
        return {"t_en": t_en.numpy(), "bert": bert.numpy(), "d_en": d_en.numpy()}

    def diffusion_sampler(self, f: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        scale = float(f.get("embedding_scale", torch.tensor(1.0)))
        extra = {"features": f["reference_style"]} if self.multispeaker else {}
        with _given_noises(f["step_noises"]):
            style = self.sampler(f["noise"], embedding=f["bert"], num_steps=self.steps, embedding_scale=scale,
                                 **extra).squeeze(0)
        return {"style": style.numpy()}

    def decoder(self, f: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        m, lengths = self.model, f["token_lengths"]
        mask = _mask(lengths)
        ref, s = f["style"][:, :self.style_dim], f["style"][:, self.style_dim:]
        d = m.predictor.text_encoder(f["d_en"], s, lengths, mask)
        x, _ = m.predictor.lstm(d)
        duration = torch.sigmoid(m.predictor.duration_proj(x)).sum(axis=-1) / float(f["speed"])
        pred_dur = torch.round(duration.squeeze(0)).clamp(min=1)
        pred_dur[-1] += int(f["tail_frames"])
        alignment = torch.zeros(int(lengths[0]), int(pred_dur.sum().data))
        frame = 0
        for i in range(alignment.size(0)):
            alignment[i, frame:frame + int(pred_dur[i].data)] = 1
            frame += int(pred_dur[i].data)
        en = d.transpose(-1, -2) @ alignment.unsqueeze(0)
        asr = f["t_en"] @ alignment.unsqueeze(0)
        if self.hifigan:  # the LibriTTS notebook's one-frame delay of both aligned inputs
            en = torch.cat([en[:, :, :1], en[:, :, :-1]], dim=-1)
            asr = torch.cat([asr[:, :, :1], asr[:, :, :-1]], dim=-1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(f["noise_seed"]))
            F0, N = m.predictor.F0Ntrain(en, s)
            wave = m.decoder(asr, F0, N, ref.squeeze().unsqueeze(0)).reshape(-1)
        if self.hifigan:
            wave = wave[:-50]
        return {"waveform": wave[None].numpy(), "durations": pred_dur.long()[None].numpy()}


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m styletts2.bench.upstream_worker", description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True, help="upstream StyleTTS2 checkout")
    parser.add_argument("--config", required=True, help="the upstream config.yml the weights were built from")
    parser.add_argument("--weights", required=True, help="checkpoint in upstream's layout ({'net': {...}})")
    parser.add_argument("--steps", type=int, default=5, help="diffusion steps")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr  # the model code's prints must not corrupt the reply stream
    graphs = UpstreamGraphs(args.upstream, args.config, args.weights, args.steps)
    pickle.dump(("ready", {"multispeaker": graphs.multispeaker}), replies)
    replies.flush()
    requests = sys.stdin.buffer
    while True:
        request = pickle.load(requests)
        if request is None:
            return 0
        graph, feeds = request
        start = time.perf_counter()
        outputs = graphs.run(graph, feeds)
        pickle.dump((outputs, time.perf_counter() - start, peak_rss_mb()), replies)
        replies.flush()


if __name__ == "__main__":
    sys.exit(main())
