"""PL-BERT's training text: lines of text -> words, each with its phonemes and its vocabulary key.

Upstream (PL-BERT's phonemize.py) splits text into words and phonemizes every word on its own, so
each phoneme knows the word it came from; punctuation marks stand for themselves. Here:

- sources: a text file with one sentence per line; an LJSpeech `metadata.csv` (or its folder),
  whose normalized text is used; or an upstream list file (`wav|phonemes|speaker`). A list's
  phonemes are already split into words, and with no text beside them a word's key is its phoneme
  string (homophones then share a class). `transcripts` gives a list's clips their text instead:
  an LJSpeech `metadata.csv` (clip id = the wav's file stem), or a suffix such as
  `.normalized.txt` naming a text file beside each wav (LibriTTS).
- words: runs of letters/digits (with inner apostrophes) and single punctuation marks. A word's
  key is its lower-cased form; it is phonemized as written (espeak-ng reads `US` and `us`
  differently) through the project's phonemizer, one call per distinct word ever: results go to
  the phoneme cache beside the text (`readers.phonemize_texts`, keyed by language and espeak-ng version).
- nothing is dropped silently: characters outside the symbol table, punctuation marks outside it,
  words espeak-ng cannot say and lines left with no phonemes are counted in the `TextReport`, and
  the lines listed with file and line number.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from styletts2.text.symbols import SYMBOL_TO_ID

from .readers import Issue, phonemize_texts, read_ljspeech, read_list

# A word: letters/digits with inner apostrophes ("don't", "o’clock"); or one punctuation mark.
_WORD = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
_AUDIO = (".wav", ".flac", ".mp3", ".ogg")


def split_text_words(text: str) -> list[str]:
    """Words and punctuation marks of `text`, in order."""
    return _WORD.findall(text)


def _is_punctuation(word: str) -> bool:
    return not any(c.isalnum() for c in word)


@dataclass(frozen=True)
class TextLine:
    """One line of a source: its text, or (list files) its phoneme words."""

    source: Path
    line: int
    text: str | None = None
    phonemes: str | None = None


@dataclass(frozen=True)
class WordSentence:
    """A line as PL-BERT trains on it: each word's vocabulary key and phoneme string (every
    character in the symbol table)."""

    keys: tuple[str, ...]
    phonemes: tuple[str, ...]
    where: str


@dataclass
class TextReport:
    """What reading a source gave: the usable sentences and everything left out."""

    sentences: list[WordSentence] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    dropped_symbols: Counter = field(default_factory=Counter)  # characters outside the symbol table
    dropped_words: Counter = field(default_factory=Counter)  # words with no phonemes left

    def summary(self, examples: int = 5) -> str:
        reasons = Counter(i.reason for i in self.issues)
        text = f"{len(self.sentences)} sentence(s)"
        if reasons:
            text += ", skipped " + ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        if self.dropped_words:
            shown = ", ".join(f"{w!r} x{n}" for w, n in self.dropped_words.most_common(examples))
            text += f"; {sum(self.dropped_words.values())} word(s) without phonemes left out ({shown})"
        if self.dropped_symbols:
            shown = ", ".join(f"{c!r} x{n}" for c, n in self.dropped_symbols.most_common(examples))
            text += f"; characters outside the symbol table dropped: {shown}"
        for issue in self.issues[:examples]:
            text += f"\n  {issue}"
        if len(self.issues) > examples:
            text += f"\n  ... ({len(self.issues) - examples} more)"
        return text


def _is_list_file(path: Path) -> bool:
    """A list file's first line is `something.wav|...`."""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            if raw.strip():
                first = raw.split("|", 1)
                return len(first) == 2 and first[0].strip().lower().endswith(_AUDIO)
    return False


def _transcript_lookup(transcripts: str) -> Callable[[Path], str | None]:
    """wav path -> its text, from an LJSpeech metadata.csv or a text file beside the wav."""
    if transcripts.startswith("."):
        def beside(wav: Path) -> str | None:
            path = wav.with_name(wav.stem + transcripts)
            return path.read_text(encoding="utf-8").strip() if path.is_file() else None
        return beside
    table = {r.wav.stem: r.text for r in read_ljspeech(transcripts, issues=[])}
    return lambda wav: table.get(wav.stem)


def read_text_lines(path: str | Path, root: str | Path | None = None, transcripts: str | None = None,
                    issues: list[Issue] | None = None) -> list[TextLine]:
    """The lines of any source (see the module docstring); malformed lines go to `issues`."""
    issues = [] if issues is None else issues
    path = Path(path)
    if path.is_dir() or path.name == "metadata.csv":
        return [TextLine(r.source, r.line, text=r.text) for r in read_ljspeech(
            path / "metadata.csv" if path.is_dir() else path, issues=issues)]
    if _is_list_file(path):
        records = read_list(path, root=root, issues=issues)
        if transcripts is None:
            return [TextLine(r.source, r.line, phonemes=r.phonemes) for r in records]
        lookup, lines = _transcript_lookup(transcripts), []
        for r in records:
            text = lookup(r.wav)
            if text is None:
                issues.append(Issue("no_transcript", r.source, r.line, f"no text for {r.wav} in {transcripts}"))
            else:
                lines.append(TextLine(r.source, r.line, text=text))
        return lines
    with open(path, encoding="utf-8") as f:
        return [TextLine(path, number, text=raw.strip()) for number, raw in enumerate(f, start=1)]


def _known(phonemes: str, report: TextReport) -> str:
    """`phonemes` without the characters outside the symbol table (counted in the report)."""
    unknown = [c for c in phonemes if c not in SYMBOL_TO_ID]
    if not unknown:
        return phonemes
    report.dropped_symbols.update(unknown)
    return "".join(c for c in phonemes if c in SYMBOL_TO_ID)


def word_sentences(lines: list[TextLine], phonemizer: Callable[[str], str] | None, cache_dir: str | Path,
                   report: TextReport | None = None) -> TextReport:
    """Phonemize `lines` word by word (see the module docstring) into `report.sentences`.

    phonemizer: text -> phonemes with `language` and `version` (only needed when a line has text).
    """
    report = TextReport() if report is None else report
    texts = {line: split_text_words(line.text) for line in lines if line.text is not None}
    spoken = {w for words in texts.values() for w in words if not _is_punctuation(w)}
    table, failed = (phonemize_texts(spoken, phonemizer, cache_dir) if spoken else ({}, {}))
    for line in lines:
        if line.text is not None:
            # A punctuation mark stands for itself, if the symbol table has it.
            pairs = [(w.lower(), (w if all(c in SYMBOL_TO_ID for c in w) else "") if _is_punctuation(w)
                      else table.get(w, "")) for w in texts[line]]
        else:  # phoneme words of a list file: the phonemes are the key
            pairs = [(w, w) for w in line.phonemes.split()]
        keys, phonemes = [], []
        for key, word_phonemes in pairs:
            known = _known(word_phonemes, report).strip()
            if known:
                keys.append(key)
                phonemes.append(known)
            else:
                report.dropped_words[key] += 1
        where = f"{line.source}:{line.line}"
        if keys:
            report.sentences.append(WordSentence(tuple(keys), tuple(phonemes), where))
        else:
            detail = repr(line.text if line.text is not None else line.phonemes)
            words = texts.get(line, [])
            why = "; ".join(f"{w!r}: {failed[w]}" for w in words if w in failed)[:200]
            reason = "no_phonemes" if words or line.phonemes else "empty"
            report.issues.append(Issue(reason, line.source, line.line, detail + (f" ({why})" if why else "")))
    return report


def read_word_sentences(path: str | Path, phonemizer: Callable[[str], str] | None = None,
                        root: str | Path | None = None, transcripts: str | None = None) -> TextReport:
    """Read any source and phonemize it word by word; the cache lives beside `path`."""
    path = Path(path)
    report = TextReport()
    lines = read_text_lines(path, root=root, transcripts=transcripts, issues=report.issues)
    if phonemizer is None and any(line.text is not None for line in lines):
        from styletts2.text.phonemizer import EspeakPhonemizer

        from .readers import corpus_language

        phonemizer = EspeakPhonemizer(corpus_language())
    return word_sentences(lines, phonemizer, path if path.is_dir() else path.parent, report)
