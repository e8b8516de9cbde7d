"""How close the onnxruntime export's waveform is, measured on float32's own scale.

The waveform is ill-conditioned in float32 (the NSF source integrates F0 into a phase, and the
iSTFTNet reads the raw phase of that source's STFT, which jumps by 2 pi on a sign change), so on a
long utterance two float32 computations of the same function differ by tens of dB SNR, not 100.
The bound is therefore relative: onnxruntime must be about as far from eager as eager is from float64
or from itself with its inputs moved by one rounding step (`export.parity_report.parity_rows`).
"""
import pytest
import torch

from conftest import REPO
from styletts2.export.common import LoadedModel, build_random_model, graphs_for
from styletts2.export.parity_report import parity_rows
from styletts2.export.to_onnx import export_onnx
from styletts2.graphs import prepare_for_export
from styletts2.runtime import OnnxExecutor, read_model_json

pytestmark = pytest.mark.usefixtures("one_thread")
STEPS = 4


@pytest.mark.parametrize("gin_file", ["gin/model/tiny.gin", "gin/model/tiny_multispeaker.gin"])
def test_onnxruntime_is_as_accurate_as_eager(gin_file, tmp_path):
    model = build_random_model(str(REPO / gin_file), seed=0)
    with torch.no_grad():
        model.predictor.F0_proj.bias += 150.0  # voiced: random F0 sits below the voicing threshold
    prepare_for_export(model)
    export_onnx(LoadedModel(model, f"random-init:{gin_file}", ""), tmp_path, STEPS, verify=False)
    graphs = graphs_for(model, STEPS)
    executor = OnnxExecutor(read_model_json(tmp_path), "cpu", threads=1)
    row, = parity_rows(model, graphs, [executor], token_counts=[200], steps=STEPS, speed=4.0)
    assert row["durations_equal"]
    assert row["diffusion_sampler.style"] < 1e-5 and row["text_encoder.t_en"] < 1e-5
    floor = min(row["eager_fp64_snr_db"], row["eager_1ulp_snr_db"])
    # Two independent float32 errors of eager's size add 3 dB; 3 dB more for one draw's spread. Where
    # float32 is well conditioned, onnxruntime's own op accuracy (its Sin is ~2.5x less exact than
    # torch's) is what shows: 50 dB then. Measured: iSTFTNet 32.9 dB against eager, 38.2 against float64
    # (eager: 33.6, one step 44.2); HiFi-GAN 55.2 and 56.0 (eager: 68.3, one step 77.8).
    bound = min(floor - 6, 50)
    assert row["e2e_snr_db"] >= bound and row["fp64_snr_db"] >= min(row["eager_fp64_snr_db"] - 6, 50), row
