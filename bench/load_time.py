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
from styletts2.runtime.model_dir import read_model_json

GRAPHS = ["text_encoder", "diffusion_sampler_unguided", "decoder"]
# Run in a fresh process: the peak after opening, with nothing opened before it.
OPEN_ONCE = """
import resource, sys, time
from styletts2.runtime import Synthesizer, read_model_json
from styletts2.runtime.executor import OnnxExecutor
folder, side_by_side = sys.argv[1], sys.argv[2] == "True"
start = time.perf_counter()
Synthesizer(folder, executor=OnnxExecutor(read_model_json(folder), side_by_side=side_by_side))
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def memory_rounds(folder: Path, rounds: int) -> None:
    """`rounds` fresh processes each way, alternating; a markdown row per process."""
    print("| graphs opened | seconds | peak after opening |\n|---|---|---|")
    for _ in range(rounds):
        for side_by_side in (True, False):
            result = subprocess.run([sys.executable, "-c", OPEN_ONCE, str(folder), str(side_by_side)],
                                    capture_output=True, text=True, check=True)
            seconds, peak_mb = map(float, result.stdout.split()[-2:])
            print(f"| {'side by side' if side_by_side else 'one by one'} | {seconds:.2f} s | {peak_mb:.0f} MB |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="an exported folder (export/to_onnx.py)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads per session")
    parser.add_argument("--memory", action="store_true",
                        help="peak memory after opening, side by side and one by one, in fresh processes")
    args = parser.parse_args(argv)
    if args.memory:
        memory_rounds(args.folder, args.rounds)
        return 0
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
