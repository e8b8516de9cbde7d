"""Synthesis with an exported StyleTTS2 model on onnxruntime, for applications: numpy, onnxruntime,
phonemizer/espeak-ng, soundfile and soxr only. Nothing here (nor anything it imports) imports torch.

    from styletts2.runtime import Synthesizer
    tts = Synthesizer("exported/ljspeech")               # CUDA when onnxruntime has it, else CPU
    audio = tts.synthesize("Hello there.", seed=0)       # float32 [samples] at tts.sample_rate
    for chunk in tts.stream(long_text, seed=0): ...      # sentence by sentence

The graphs run in an executor (`styletts2.runtime.executor`): onnxruntime by default; the same
steps run torch eager or TorchScript graphs with `Synthesizer(folder, executor=...)`
(`styletts2.torch_executor`, which needs torch).

Command line: `python -m styletts2.runtime "Hello there." -m exported/ljspeech -o hello.wav`.
"""
from .executor import Executor, OnnxExecutor
from .mel import LogMel
from .model_dir import ModelConfig, ModelDirError, ProviderError, ThreadCountWarning, read_model_json
from .synthesizer import EspeakVersionWarning, NonFiniteError, Piece, SynthesisOptions, Synthesizer

__all__ = ["EspeakVersionWarning", "Executor", "LogMel", "ModelConfig", "ModelDirError", "NonFiniteError",
           "OnnxExecutor", "Piece", "ProviderError", "SynthesisOptions", "Synthesizer", "ThreadCountWarning",
           "read_model_json"]
