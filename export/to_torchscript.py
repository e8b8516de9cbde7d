"""Command line of `styletts2.export.to_torchscript` (the package's code; `python export/to_torchscript.py --help` for its options)."""
import sys

from styletts2.export.to_torchscript import main

if __name__ == "__main__":
    sys.exit(main())
