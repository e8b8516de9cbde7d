"""Validation samples reach TensorBoard as audio and as log-mel images, once per epoch."""
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from styletts2.train.batch_ops import log_validation_sample
from styletts2.train.logger import TrainLogger
from styletts2.train.stage import TrainingContext


def test_validation_sample_is_logged_as_audio_and_mel_image_once_per_epoch(tmp_path):
    logger = TrainLogger(tmp_path)
    calls = []

    def log_audio(tag, wave, step):
        calls.append((tag, step))
        logger.log_audio(tag, wave, step)

    ctx = TrainingContext(device=torch.device("cpu"), log_audio=log_audio)
    wave = torch.sin(torch.arange(24000) * 0.05).reshape(1, 1, -1) * 0.3
    for _ in range(2):  # a second validation batch of the same epoch logs nothing
        log_validation_sample(ctx, 3, wave, wave * 0.5)
    log_validation_sample(ctx, 4, wave, wave)
    logger.close()
    assert calls == [("val/reconstruction", 3), ("val/recording", 3), ("val/reconstruction", 4), ("val/recording", 4)]

    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"audio": 0, "images": 0})
    events.Reload()
    assert {"val/reconstruction", "val/recording"} <= set(events.Tags()["audio"])
    assert {"val/reconstruction_mel", "val/recording_mel"} <= set(events.Tags()["images"])

    quiet = TrainingContext(device=torch.device("cpu"))  # other ranks: no logger
    log_validation_sample(quiet, 1, wave, wave)
    assert quiet.sampled_epoch is None
