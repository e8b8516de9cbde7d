"""Export of StyleTTS2 to ONNX and TorchScript (see export/to_onnx.py, export/to_torchscript.py)."""
