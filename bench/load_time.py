"""Load time of an exported folder, in three rounds:

    python bench/load_time.py EXPORT_DIR [--rounds 3] [--threads 2]

- `read_model_json`: model.json and its checks;
- the three graphs a default call opens (text encoder, unguided sampler, decoder), one after the
  other, then through `OnnxExecutor.load` (side by side); each graph file is hashed against
  model.json while onnxruntime opens it;
- `Synthesizer(EXPORT_DIR)`: what an application waits for before its first call.
Prints a markdown table of medians and every round.

With `--memory`, instead: `Synthesizer(EXPORT_DIR)` in fresh processes, the graphs opened side by
side and one by one in turn (`OnnxExecutor(side_by_side=)`), each process's seconds and peak
resident memory after opening (`ru_maxrss`).
"""
import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from styletts2.runtime import Synthesizer
from styletts2.runtime.executor import OnnxExecutor
from styletts2.runtime.model_dir import ModelDirError, read_model_json

GRAPHS = ["text_encoder", "diffusion_sampler_unguided", "decoder"]
# Run in a fresh process: the peak after opening, with nothing opened before it.
OPEN_ONCE = """
import resource, sys, time
from styletts2.runtime import Synthesizer, read_model_json
from styletts2.runtime.executor import OnnxExecutor
folder, side_by_side, threads = sys.argv[1], sys.argv[2] == "True", int(sys.argv[3]) or None
start = time.perf_counter()
Synthesizer(folder, executor=OnnxExecutor(read_model_json(folder), threads=threads, side_by_side=side_by_side))
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def memory_rounds(folder: Path, rounds: int, threads: int | None) -> None:
    """`rounds` fresh processes each way, alternating; a markdown row per process. `threads`: per
    session (None: onnxruntime's default)."""
    print("| graphs opened | seconds | peak after opening |\n|---|---|---|")
    for _ in range(rounds):
        for side_by_side in (True, False):
            child = [sys.executable, "-c", OPEN_ONCE, str(folder), str(side_by_side), str(threads or 0)]
            result = subprocess.run(child, capture_output=True, text=True)
            if result.returncode != 0:  # the child's own last line says why
                raise SystemExit(f"load_time.py: opening {folder} failed: {result.stderr.strip().splitlines()[-1]}")
            seconds, peak_mb = map(float, result.stdout.split()[-2:])
            print(f"| {'side by side' if side_by_side else 'one by one'} | {seconds:.2f} s | {peak_mb:.0f} MB |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="an exported folder (export/to_onnx.py)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, help="onnxruntime intra-op threads per session (default 2; "
                        "with --memory, onnxruntime's own default)")
    parser.add_argument("--memory", action="store_true",
                        help="peak memory after opening, side by side and one by one, in fresh processes")
    args = parser.parse_args(argv)
    try:
        read_model_json(args.folder)  # a wrong folder stops here, in one line
    except ModelDirError as err:
        raise SystemExit(f"load_time.py: {err}") from None
    if args.memory:
        memory_rounds(args.folder, args.rounds, args.threads)
        return 0
    args.threads = args.threads or 2
    rows: dict[str, list[float]] = {"read_model_json": [], "three graphs, one by one": [],
                                    "three graphs, OnnxExecutor.load": [], "Synthesizer(folder)": []}

    def timed(row: str, call) -> object:
        start = time.perf_counter()
        result = call()
        rows[row].append(time.perf_counter() - start)
        return result

    for _ in range(args.rounds):
        config = timed("read_model_json", lambda: read_model_json(args.folder))
        one_by_one = OnnxExecutor(config, "cpu", threads=args.threads)
        timed("three graphs, one by one", lambda: [one_by_one.session(graph) for graph in GRAPHS])
        timed("three graphs, OnnxExecutor.load", lambda: OnnxExecutor(config, "cpu", threads=args.threads).load(GRAPHS))
        timed("Synthesizer(folder)", lambda: Synthesizer(args.folder, providers="cpu", threads=args.threads))
    print("| what | median | rounds |\n|---|---|---|")
    for row, seconds in rows.items():
        print(f"| {row} | {statistics.median(seconds):.2f} s | " + ", ".join(f"{s:.2f}" for s in seconds) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
