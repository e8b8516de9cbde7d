"""Command line of `styletts2.bench.int8_quality` (the package's code; `python bench/int8_quality.py --help`)."""
import sys

try:
    from styletts2.bench.int8_quality import main
except ModuleNotFoundError as err:
    if err.name != "styletts2":
        raise
    sys.exit("bench/int8_quality.py: the styletts2 package is not installed in this Python: run `make setup` "
             "(or `pip install -e .` in the checkout) first")

if __name__ == "__main__":
    sys.exit(main())
