"""Command line of `styletts2.bench.matmul_rate` (the package's code; `python bench/matmul_rate.py --help` for its options)."""
import sys

from styletts2.bench.matmul_rate import main

if __name__ == "__main__":
    sys.exit(main())
