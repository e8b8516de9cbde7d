"""Command line of `styletts2.export.to_onnx` (the package's code; `python export/to_onnx.py --help` for its options)."""
import sys

from styletts2.export.to_onnx import main

if __name__ == "__main__":
    sys.exit(main())
