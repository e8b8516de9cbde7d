"""Corpus readers: LJSpeech `metadata.csv` and upstream's list files, plus the phoneme cache.

Both formats become a list of `Record`s that remember where they came from (file and line), so
every later complaint about a clip can name it. A malformed line either raises
`CorpusFormatError` (no `issues` list given) or is skipped and appended to `issues`.

- LJSpeech: `metadata.csv` lines `id|text|normalized text`, audio in `wavs/<id>.wav` beside it.
  The normalized text is used when present (numbers and abbreviations spelled out).
- upstream lists (`Data/train_list.txt`): `wav path|phonemes|speaker id`, the speaker optional
  (0), paths relative to a root directory (upstream's `root_path`).

Text records are normalized (`styletts2.text.normalize`: numbers, dates, abbreviations... as
words, as synthesis does) and phonemized once with `phonemize_records`; the results are kept in a
JSON cache beside the data whose file name carries the language, the espeak-ng version and the
normalizer's name, version and settings, so re-reading a corpus costs no phonemization and a
different espeak-ng or normalizer never reuses stale phonemes. The language is the gin-bound
`corpus_language()` (`%LANGUAGE`, 'en-us' unless an experiment says otherwise), the normalizer the
gin-bound `corpus_normalizer()` (on, with its language's default settings, unless bound otherwise;
its bindings land in the operative config every checkpoint carries). Records that already have
phonemes (upstream list files) are neither normalized nor phonemized.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import gin

from styletts2.file_modes import give_ordinary_mode
from styletts2.text.espeak import LANGUAGE
from styletts2.text.normalize import TextNormalizer
from styletts2.text.scripts import describe, english_voice, foreign_scripts
from styletts2.text.tokenizer import preview_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Record:
    """One utterance. `text` is set for LJSpeech records, `phonemes` for list records (and for
    LJSpeech records once phonemized); `line` is 1-based."""

    wav: Path
    speaker: int
    text: str | None
    phonemes: str | None
    source: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(frozen=True)
class Issue:
    """A problem with one line or clip of a corpus."""

    reason: str
    source: Path
    line: int
    detail: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}: {self.detail}"


# Speaker ids become an int64 tensor in every batch; a larger one failed there ("Overflow when unpacking long long").
MAX_SPEAKER_ID = 2**31 - 1


class CorpusFormatError(ValueError):
    """A corpus file has a malformed line."""


def _report(issue: Issue, issues: list[Issue] | None) -> None:
    if issues is None:
        raise CorpusFormatError(str(issue))
    issues.append(issue)


# Where the corpora the gin/data files name come from (said when one is missing).
CORPUS_HINT = ("get the corpus (LJSpeech: https://keithito.com/LJ-Speech-Dataset/ unpacked to data/LJSpeech-1.1; "
               "LibriTTS: https://www.openslr.org/60/) and upstream's lists (train_list.txt, val_list.txt, "
               "OOD_texts.txt from https://github.com/yl4579/StyleTTS2/tree/main/Data) where gin/data/*.gin "
               "expects them, or bind Trainer.train_data / val_data / data_root / ood_data to your copies")


def _lines(path: Path, issues: list[Issue] | None = None):
    """(line number, stripped line) for every non-blank line. A line that is not UTF-8 is reported
    (`undecodable`, with its line number) and skipped, or raises without `issues`."""
    if not path.is_file():
        raise FileNotFoundError(f"corpus file not found: {path} ({'a folder' if path.is_dir() else 'no such file'}); "
                                + CORPUS_HINT)
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as err:
                _report(Issue("undecodable", path, number, f"not UTF-8: byte 0x{raw[err.start]:02x} at column "
                              f"{err.start + 1} ({raw[max(0, err.start - 20):err.start + 20]!r})"), issues)
                continue
            if number == 1:
                line = line.removeprefix("\ufeff")  # a byte-order mark some editors write
            if line.strip():
                yield number, line


def read_ljspeech(
    metadata: str | Path,
    wav_dir: str | Path | None = None,
    speaker: int = 0,
    issues: list[Issue] | None = None,
) -> list[Record]:
    """Records of an LJSpeech `metadata.csv` (`id|text|normalized text`; the third field optional).

    wav_dir: where `<id>.wav` live (default: `wavs/` beside the metadata file).
    """
    metadata = Path(metadata)
    wav_dir = Path(wav_dir) if wav_dir is not None else metadata.parent / "wavs"
    records = []
    for number, line in _lines(metadata, issues):
        fields = line.split("|")
        if len(fields) not in (2, 3) or not fields[0].strip():
            _report(Issue("malformed", metadata, number, f"expected 'id|text|normalized text', got {line!r}"), issues)
            continue
        clip_id, text = fields[0].strip(), fields[1]
        if len(fields) == 3 and fields[2].strip():
            text = fields[2]
        records.append(Record(wav_dir / f"{clip_id}.wav", speaker, text.strip(), None, metadata, number))
    return records


def read_list(path: str | Path, root: str | Path | None = None, issues: list[Issue] | None = None,
              allow_outside_root: bool = False) -> list[Record]:
    """Records of an upstream list file (`wav|phonemes|speaker`; the speaker optional, default 0).

    root: the directory wav paths are relative to (upstream's `root_path`; default: the list's folder).
    allow_outside_root: accept absolute paths and paths that leave `root` through `..` (reported
        as `outside_root` otherwise: a list should not read audio from anywhere on the machine).
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    records = []
    for number, line in _lines(path, issues):
        fields = line.split("|")
        if len(fields) not in (2, 3) or not fields[0].strip():
            _report(Issue("malformed", path, number, f"expected 'wav|phonemes|speaker', got {line!r}"), issues)
            continue
        speaker_field = fields[2].strip() if len(fields) == 3 else "0"
        try:
            speaker = int(speaker_field)
        except ValueError:
            _report(Issue("malformed", path, number, f"speaker id {speaker_field!r} is not an integer"), issues)
            continue
        if not 0 <= speaker <= MAX_SPEAKER_ID:
            _report(Issue("malformed", path, number, f"speaker id {speaker} is outside 0..{MAX_SPEAKER_ID}"), issues)
            continue
        wav = fields[0].strip()
        if not allow_outside_root and _leaves_root(wav):
            _report(Issue("outside_root", path, number, f"{wav!r} is not inside the data root {root} (absolute or "
                          "through '..'); bind scan_corpus.allow_outside_root = True to allow it"), issues)
            continue
        records.append(Record(root / wav, speaker, None, fields[1].strip(), path, number))
    return records


def _leaves_root(relative: str) -> bool:
    """Whether a list entry's path is absolute or climbs above the folder it is relative to (lexically:
    symbolic links inside the root may point anywhere)."""
    if os.path.isabs(relative) or Path(relative).drive:
        return True
    return os.path.normpath(relative).replace("\\", "/").split("/")[0] == ".."


def read_corpus(path: str | Path, root: str | Path | None = None, issues: list[Issue] | None = None,
                allow_outside_root: bool = False) -> list[Record]:
    """Read either format: a directory or a `metadata.csv` is LJSpeech, any other file a list file."""
    path = Path(path)
    if path.is_dir():
        path = path / "metadata.csv"
    if path.name == "metadata.csv":
        return read_ljspeech(path, wav_dir=root, issues=issues)
    return read_list(path, root=root, issues=issues, allow_outside_root=allow_outside_root)


def read_ood_texts(path: str | Path) -> list[str]:
    """Phoneme strings of upstream's `OOD_texts.txt`: one per line, either bare or as the second
    field of a `wav|phonemes|...` line (upstream accepts both)."""
    texts, issues = [], []
    for _, line in _lines(Path(path), issues):
        fields = line.split("|")
        texts.append((fields[1] if ".wav" in fields[0] and len(fields) > 1 else fields[0]).strip())
    for issue in issues:
        logger.warning("OOD text skipped: %s", issue)
    return [t for t in texts if t]


# --- phonemization cache -------------------------------------------------------------------


def cache_path(directory: str | Path, language: str, espeak_version: str, normalizer: str | None = None) -> Path:
    """The cache file of one phonemization: `normalizer` is `TextNormalizer.key` (None: text as written)."""
    suffix = f".{normalizer}" if normalizer else ""
    return Path(directory) / f".phonemes.{language}.espeak-ng-{espeak_version}{suffix}.json"


def _load_cache(path: Path) -> dict[str, str]:
    """The cached {text: phonemes}; a damaged cache file is named, then rebuilt (an empty table)."""
    if not path.exists():
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            table = json.load(f)["phonemes"]
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise ValueError("'phonemes' is not a table of strings")
        return table
    except (OSError, ValueError, KeyError, TypeError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        logger.warning("phoneme cache %s is damaged (%s: %s); rebuilding it", path, type(err).__name__, err)
        return {}


def _save_cache(path: Path, language: str, version: str, table: dict[str, str],
                normalizer: TextNormalizer | None = None) -> None:
    # Atomic replace: an interrupted run never leaves a truncated cache behind.
    payload = {"language": language, "espeak_ng_version": version,
               "text_normalizer": normalizer.describe() if normalizer else None,
               "phonemes": dict(sorted(table.items()))}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, ensure_ascii=False, indent=0)
        give_ordinary_mode(tmp)  # mkstemp's 0600 would hide a shared corpus's cache from its other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_UNSAVED: set[Path] = set()  # caches already warned about


def _try_save_cache(path: Path, *args) -> None:
    """Save the cache; a folder that cannot take it (read-only corpus, full disk) costs a warning, not the run."""
    try:
        _save_cache(path, *args)
    except OSError as err:
        if path not in _UNSAVED:
            _UNSAVED.add(path)
            logger.warning("phoneme cache %s not saved (%s): going on without it; phonemization is redone "
                           "next time", path, err.strerror or err)


@gin.configurable
def corpus_language(language: str = LANGUAGE) -> str:
    """The espeak-ng language training text is phonemized in: one binding (`%LANGUAGE`, see
    gin/trainer/default.gin) for every stage's data, so any language espeak-ng speaks can be trained."""
    return language


@gin.configurable
def corpus_normalizer(enabled: bool = True, settings: dict | None = None,
                      language: str | None = None) -> TextNormalizer | None:
    """The text normalizer training text goes through before phonemization, the one synthesis
    applies by default (None when `enabled` is False: text is phonemized as written).

    settings: the normalizer's settings by name (None: its defaults; see styletts2/text/normalize).
    language: default `corpus_language()`.
    """
    if not enabled:
        return None
    return TextNormalizer(language or corpus_language(), **dict(settings or {}))


def phonemize_texts(
    texts: Iterable[str],
    phonemizer: Callable[[str], str],
    cache_dir: str | Path,
    normalizer: TextNormalizer | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """({text: phonemes}, {text: why it failed}) for every distinct non-blank text, normalizing
    (with `normalizer`, when given) and phonemizing only those the cache file in `cache_dir` lacks
    (`phonemizer` needs `language` and `version`). The table is keyed by the text as written."""
    path = cache_path(cache_dir, phonemizer.language, phonemizer.version, normalizer.key if normalizer else None)
    table = _load_cache(path)
    wanted = {t for t in texts if t.strip()}
    failed: dict[str, str] = {}
    missing = sorted(wanted - table.keys())
    for text in missing:
        try:
            spoken = normalizer(text) if normalizer else text
            if not spoken.strip():  # the phonemizer would call it empty text, which it is not
                raise ValueError(f"text {preview_text(text)} has no phoneme (nothing speakable is left after "
                                 "normalization)")
            table[text] = phonemizer(spoken)
        except ValueError as err:
            failed[text] = str(err)
    if missing:
        _try_save_cache(path, phonemizer.language, phonemizer.version, table, normalizer)
        _warn_foreign_scripts(missing, phonemizer.language)
    return {t: table[t] for t in wanted if t in table}, failed


def _warn_foreign_scripts(texts: Sequence[str], language: str) -> None:
    """One warning for the texts whose letters an English voice spells out (`text/scripts.py`): their
    clips train on letter names. Only texts phonemized now: a cached corpus is not warned about again."""
    if not english_voice(language):
        return
    found = [(text, scripts) for text in texts if (scripts := foreign_scripts(text))]
    if found:
        total = sum((scripts for _, scripts in found), Counter())
        logger.warning("%d text(s) have letters an English voice does not read as words (%s), so their clips "
                       "train on espeak-ng's letter names; the first: %s", len(found), describe(total),
                       preview_text(found[0][0]))


# espeak-ng keeps brackets, which the symbol table lacks; synthesis drops them (with a warning), so the
# training text drops them too: the same text then becomes the same tokens in both.
BRACKETS = str.maketrans("", "", "()[]{}<>")

_CONFIGURED = object()  # phonemize_records' default normalizer: corpus_normalizer() as gin binds it


def phonemize_records(
    records: Sequence[Record],
    phonemizer: Callable[[str], str] | None = None,
    cache_dir: str | Path | None = None,
    issues: list[Issue] | None = None,
    normalizer: TextNormalizer | None | object = _CONFIGURED,
) -> list[Record]:
    """Fill `phonemes` of text records, normalizing and phonemizing each distinct text once ever.

    phonemizer: text -> phoneme string with `language` and `version` attributes (default:
        `styletts2.text.phonemizer.EspeakPhonemizer(corpus_language())`).
    normalizer: applied to the text before phonemization (default: `corpus_normalizer()` in the
        phonemizer's language; None: text as written).
    cache_dir: where the cache file lives (default: the folder of the first record's source file).
    A text espeak-ng cannot phonemize is reported as a `phonemize_failed` issue (or raises, without
    `issues`) and its record is dropped; empty text gets empty phonemes (validation reports it).
    Brackets in the phonemes are dropped, as synthesis drops them (`BRACKETS`).
    Records that already have phonemes pass through unchanged: neither normalized nor phonemized.
    """
    pending = [r for r in records if r.phonemes is None]
    if not pending:
        return list(records)
    if phonemizer is None:
        from styletts2.text.phonemizer import EspeakPhonemizer

        phonemizer = EspeakPhonemizer(corpus_language())
    if normalizer is _CONFIGURED:
        normalizer = corpus_normalizer(language=phonemizer.language)
    table, failed = phonemize_texts((r.text for r in pending), phonemizer, cache_dir or pending[0].source.parent,
                                    normalizer)

    out = []
    for record in records:
        if record.phonemes is not None:
            out.append(record)
        elif not record.text.strip():
            out.append(replace(record, phonemes=""))  # left for validation to report as empty text
        elif record.text in failed:
            _report(Issue("phonemize_failed", record.source, record.line, failed[record.text]), issues)
        else:
            out.append(replace(record, phonemes=table[record.text].translate(BRACKETS)))
    return out
