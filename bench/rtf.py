"""Command line of `styletts2.bench.rtf` (the package's code; `python bench/rtf.py --help` for its options)."""
import sys

from styletts2.bench.rtf import main

if __name__ == "__main__":
    sys.exit(main())
