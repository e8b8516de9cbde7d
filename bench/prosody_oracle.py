"""Command line of `styletts2.bench.prosody_oracle` (the package's code; `python bench/prosody_oracle.py --help` for its options)."""
import sys

try:
    from styletts2.bench.prosody_oracle import main
except ModuleNotFoundError as err:
    if err.name != "styletts2":
        raise
    sys.exit("bench/prosody_oracle.py: the styletts2 package is not installed in this Python: run `make setup` "
             "(or `pip install -e .` in the checkout) first")

if __name__ == "__main__":
    sys.exit(main())
