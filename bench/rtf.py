"""Command line of `styletts2.bench.rtf` (the package's code; `python bench/rtf.py --help` for its options)."""
import sys

try:
    from styletts2.bench.rtf import main
except ModuleNotFoundError as err:
    if err.name != "styletts2":
        raise
    sys.exit("bench/rtf.py: the styletts2 package is not installed in this Python: run `make setup` "
             "(or `pip install -e .` in the checkout) first")

if __name__ == "__main__":
    sys.exit(main())
