"""Command line of `styletts2.export.to_torchscript` (the package's code; `python export/to_torchscript.py --help` for its options)."""
import sys

try:
    from styletts2.export.to_torchscript import main
except ModuleNotFoundError as err:
    if err.name != "styletts2":
        raise
    sys.exit("export/to_torchscript.py: the styletts2 package is not installed in this Python: run `make setup` "
             "(or `pip install -e .` in the checkout) first")

if __name__ == "__main__":
    sys.exit(main())
