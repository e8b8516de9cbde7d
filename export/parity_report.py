"""Command line of `styletts2.export.parity_report` (the package's code; `python export/parity_report.py --help` for its options)."""
import sys

from styletts2.export.parity_report import main

if __name__ == "__main__":
    sys.exit(main())
