"""Command line of `styletts2.bench.learning` (the package's code; `python bench/learning.py --help` for its options)."""
import sys

from styletts2.bench.learning import main

if __name__ == "__main__":
    sys.exit(main())
