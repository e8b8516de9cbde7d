"""Command line of `styletts2.export.parity_report` (the package's code; `python export/parity_report.py --help` for its options)."""
import sys

try:
    from styletts2.export.parity_report import main
except ModuleNotFoundError as err:
    if err.name != "styletts2":
        raise
    sys.exit("export/parity_report.py: the styletts2 package is not installed in this Python: run `make setup` "
             "(or `pip install -e .` in the checkout) first")

if __name__ == "__main__":
    sys.exit(main())
