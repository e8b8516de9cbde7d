"""Start-up scan of a corpus: find the clips training cannot use, report them, keep the rest.

The readers report lines they cannot use: `malformed` (field count, speaker id), `undecodable`
(not UTF-8), `outside_root` (a list path that is absolute or leaves the data root), and
`phonemize_failed`. Each record is then checked for
- `empty_text`       no text / phonemes;
- `unknown_symbols`  phoneme characters outside the 178-symbol table;
- `missing`          the audio file does not exist;
- `unreadable`       soundfile cannot decode it, or it holds no samples;
- `truncated`        a WAV file shorter than its header's data size (soundfile reads the part that is there);
- `too_short`        fewer than `min_mel_frames` mel frames at 24 kHz (the style encoders need 80),
                     counted on the clip itself, before the dataset's edge padding;
- `silent`           peak amplitude below `silence_peak`;
- `out_of_range`     peak amplitude beyond `MAX_PEAK` (a float file; synthesis refuses such reference audio);
- `text_too_long`    more tokens (with the two pads training adds) than the clip has alignment frames
                     (mel frames of the edge-padded clip / 2): the monotonic alignment gives every
                     token at least one frame, so such a clip would stop training at its first batch.
The console summary counts every reason and shows a few examples with file and line number; the
trainer writes every rejected entry to `<run_dir>/corpus_issues/` (`ValidationReport.write`,
`issues_file`). Nothing here raises because of one bad clip.
"""
from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import gin
import numpy as np
import soundfile as sf

from styletts2.audio.io import load_wav
from styletts2.audio.mel import HOP_LENGTH, n_mel_frames
from styletts2.data.dataset import EDGE_PADDING
from styletts2.data.readers import Issue, Record, phonemize_records, read_corpus
from styletts2.text.tokenizer import Tokenizer, describe_char

logger = logging.getLogger(__name__)

SAMPLE_RATE = 24000
MAX_PEAK = 2.0  # synthesis refuses reference samples beyond +-2: training on them is no better
ALIGN_FRAME = 2  # mel frames per alignment frame: the aligner halves the mel length (train.batch_ops)


@dataclass
class ValidationReport:
    """Outcome of a scan: the usable records and one `Issue` per rejected line or clip."""

    good: list[Record]
    issues: list[Issue] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return dict(Counter(issue.reason for issue in self.issues))

    def write(self, path: str | Path) -> Path:
        """Every rejected entry, one per line: `file:line<TAB>reason<TAB>detail` (the console shows a few)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [f"{issue.source}:{issue.line}\t{issue.reason}\t{' '.join(issue.detail.split())}\n"
                for issue in self.issues]
        path.write_text("".join(rows), encoding="utf-8")
        return path

    def summary(self, examples: int = 3) -> str:
        total = len(self.good) + len(self.issues)
        lines = [f"{len(self.good)} of {total} clips usable"]
        by_reason: dict[str, list[Issue]] = defaultdict(list)
        for issue in self.issues:
            by_reason[issue.reason].append(issue)
        for reason, found in sorted(by_reason.items()):
            lines.append(f"  {reason}: {len(found)}")
            lines += [f"    {issue}" for issue in found[:examples]]
        return "\n".join(lines)


def issues_file(run_dir: str | Path, corpus: str | Path) -> Path:
    """Where a run keeps the rejected entries of one corpus: `corpus_issues/<folder>_<file>.tsv`
    (the folder in the name keeps two `metadata.csv` or `train_list.txt` apart)."""
    return Path(run_dir) / "corpus_issues" / ("_".join(Path(corpus).parts[-2:]) + ".tsv")


def _text_issue(record: Record, tokenizer: Tokenizer) -> Issue | None:
    phonemes = record.phonemes
    if phonemes is None:
        raise ValueError(f"{record.where}: record was not phonemized (run phonemize_records first)")
    if not phonemes.strip():
        return Issue("empty_text", record.source, record.line, f"no text for {record.wav.name}")
    unknown = tokenizer.unknown_symbols(phonemes)
    if unknown:
        listing = ", ".join(describe_char(c) for c in sorted(unknown))
        return Issue("unknown_symbols", record.source, record.line, listing)
    return None


def _wav_shortfall(path: Path) -> int:
    """Bytes a WAV file's data chunk lacks against its header (0: whole, or not a plain RIFF file).
    libsndfile reads a truncated file as the shorter clip it holds, without a word."""
    with open(path, "rb") as f:
        if f.read(4) != b"RIFF" or f.read(8)[4:] != b"WAVE":
            return 0
        while len(header := f.read(8)) == 8:
            size = int.from_bytes(header[4:], "little")
            if header[:4] == b"data":
                if size in (0, 0xFFFFFFFF):  # streaming writers leave the size unset
                    return 0
                available = os.fstat(f.fileno()).st_size - f.tell()
                return max(0, size - available)
            f.seek(size + size % 2, os.SEEK_CUR)  # chunks are padded to even sizes
    return 0


def _edge_padding() -> int:
    """The samples the dataset pads each clip's edges with: gin's binding, else its default."""
    try:
        return int(gin.query_parameter("SpeechDataset.edge_padding"))
    except ValueError:  # not bound
        return EDGE_PADDING


def _alignment_frames(frames: int, samplerate: int, padding: int | None = None) -> int:
    """Alignment frames of a clip as training sees it: resampled (its length rounded up, as `resample`
    gives it), edge-padded by the dataset's padding (None: `_edge_padding()`), mel frames halved."""
    padding = _edge_padding() if padding is None else padding
    samples = -(-frames * SAMPLE_RATE // samplerate) + 2 * padding
    return n_mel_frames(samples, HOP_LENGTH) // ALIGN_FRAME


def _audio_issue(record: Record, min_mel_frames: int, silence_peak: float | None,
                 tokens: int = 0, padding: int | None = None) -> Issue | None:
    def issue(reason: str, detail: str) -> Issue:
        return Issue(reason, record.source, record.line, f"{record.wav}: {detail}")

    if not record.wav.is_file():
        return issue("missing", "a folder, not an audio file" if record.wav.is_dir() else "no such file")
    try:
        info = sf.info(str(record.wav))
        if info.frames == 0:
            return issue("unreadable", "no samples")
        if info.format == "WAV" and (missing := _wav_shortfall(record.wav)):
            return issue("truncated", f"the file ends {missing} bytes before the data its header announces")
        # centred STFT frames the clip gets at 24 kHz
        frames = n_mel_frames(int(info.frames * SAMPLE_RATE / info.samplerate), HOP_LENGTH)
        if frames < min_mel_frames:
            return issue("too_short", f"{info.duration:.2f} s = {frames} mel frames < {min_mel_frames}")
        aligned = _alignment_frames(info.frames, info.samplerate, padding)
        if tokens > aligned:
            return issue("text_too_long", f"{tokens} tokens for {info.duration:.2f} s = {aligned} alignment frames "
                         "(the alignment needs one frame per token)")
        if silence_peak is not None:
            wave, _ = load_wav(record.wav)
            peak = float(np.abs(wave).max())
            if not np.isfinite(peak):
                return issue("unreadable", "non-finite samples")
            if peak > MAX_PEAK:
                return issue("out_of_range", f"peak {peak:.3g} beyond +-{MAX_PEAK:g} (samples belong in [-1, 1])")
            if peak < silence_peak:
                return issue("silent", f"peak {peak:.2e} < {silence_peak:.0e}")
    except Exception as err:  # any decoder failure is this clip's problem, never the run's
        return issue("unreadable", str(err).strip() or type(err).__name__)
    return None


def validate_records(
    records: Sequence[Record],
    min_mel_frames: int = 80,
    silence_peak: float | None = 1e-3,
    workers: int = 4,
    issues: Sequence[Issue] = (),
) -> ValidationReport:
    """Check every record (see the module docstring); `issues` from the readers are carried into
    the report. silence_peak=None skips decoding the audio (headers only: faster)."""
    tokenizer = Tokenizer()
    found: list[Issue] = list(issues)
    text_ok = []
    for record in records:
        problem = _text_issue(record, tokenizer)
        if problem:
            found.append(problem)
        else:
            text_ok.append(record)
    # libsndfile releases the GIL, so a few threads overlap the file reads. Tokens: one id per symbol
    # (all known once _text_issue passed them) and the two pads training adds.
    padding = _edge_padding()  # once for the corpus, not a gin lookup per clip
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        audio = list(pool.map(lambda r: _audio_issue(r, min_mel_frames, silence_peak, len(r.phonemes) + 2, padding),
                              text_ok))
    good = [record for record, problem in zip(text_ok, audio) if problem is None]
    found += [problem for problem in audio if problem is not None]
    return ValidationReport(good, found)


@gin.configurable
def scan_corpus(
    path: str | Path,
    root: str | Path | None = None,
    phonemizer: Callable[[str], str] | None = None,
    min_mel_frames: int = 80,
    silence_peak: float | None = 1e-3,
    workers: int = 4,
    allow_outside_root: bool = False,
    log_summary: bool = True,
) -> ValidationReport:
    """Read a corpus (LJSpeech folder / metadata.csv, or an upstream list file), phonemize its text
    through the cache, validate it and log the summary. `report.good` is what training should use.
    allow_outside_root: accept list entries with absolute paths or paths that leave `root`.
    log_summary: False for a caller that shows `report.summary()` itself (the Trainer's log)."""
    issues: list[Issue] = []
    records = read_corpus(path, root=root, issues=issues, allow_outside_root=allow_outside_root)
    records = phonemize_records(records, phonemizer, issues=issues)
    report = validate_records(records, min_mel_frames, silence_peak, workers, issues)
    if log_summary:
        log = logger.warning if report.issues else logger.info
        log("corpus %s: %s", path, report.summary())
    return report
