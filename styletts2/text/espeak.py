"""espeak-ng through phonemizer, using the library and voice data shipped in the `espeakng-loader` wheel.

phonemizer must be told both where the shared library is and where its data lives: with the
library set but no data path, espeak-ng aborts the whole process when the voice is loaded. Both
are set once, before the first backend is created. The backend itself is slow to create, so one
per language is cached.

Different espeak-ng versions phonemize some sentences differently; `espeak_version()` is recorded
with every trained or exported model so training and inference can be checked to agree.

phonemizer's punctuation handling is replaced by `SpanPunctuation`: phonemizer (3.4) finds the
marks with a pattern that spares decimal points ('3.5'), but then cuts the text at the first
occurrence of each mark's text, which is the decimal point: 'It costs 3.5 dollars today.' lost
'dollars today'. Cutting at the positions the pattern found loses nothing.

Threads: espeak-ng holds one voice and one output buffer per process, and phonemizer's backend
keeps per-call state, so threads phonemizing at once read each other's words (or phonemizer raises
on a line count). Every espeak-ng call here holds one process-wide lock (`espeak_phonemize`).
"""
import collections
import functools
import os
import threading

LANGUAGE = "en-us"
_ESPEAK_LOCK = threading.RLock()


@functools.cache
def configure_espeak() -> None:
    """Point phonemizer at espeakng-loader's library and data (idempotent)."""
    try:
        import espeakng_loader
        from phonemizer.backend.espeak.wrapper import EspeakWrapper
    except ImportError as err:
        raise RuntimeError(
            "phonemization needs the `phonemizer` and `espeakng-loader` packages "
            f"(pip install phonemizer espeakng-loader): {err}"
        ) from err
    library = espeakng_loader.get_library_path()
    data = espeakng_loader.get_data_path()
    for what, path in (("library", library), ("data directory", data)):
        if not os.path.exists(path):
            raise RuntimeError(f"espeakng-loader's espeak-ng {what} is missing: {path}")
    EspeakWrapper.set_library(library)
    if hasattr(EspeakWrapper, "set_data_path"):
        EspeakWrapper.set_data_path(data)
    else:  # older phonemizer releases read the data path from the environment only
        os.environ["ESPEAK_DATA_PATH"] = data


# phonemizer's own record of one mark (line index, mark text, position B/I/E/A), by field name
_MarkIndex = collections.namedtuple("_MarkIndex", ["index", "mark", "position"])


@functools.cache
def _span_punctuation_class():
    from phonemizer.punctuation import Punctuation

    class SpanPunctuation(Punctuation):
        """phonemizer's Punctuation, cutting each line at the marks' positions (see the module
        docstring); what it does otherwise is unchanged."""

        def _preserve_line(self, line: str, num: int):
            matches = list(self._marks_re.finditer(line))
            if not matches:
                return [line], []
            if len(matches) == 1 and matches[0].group() == line:
                return [], [_MarkIndex(num, line, "A")]
            marks, chunks, last = [], [], 0
            for i, match in enumerate(matches):
                position = "I"
                if i == 0 and match.start() == 0:
                    position = "B"
                elif i == len(matches) - 1 and match.end() == len(line):
                    position = "E"
                marks.append(_MarkIndex(num, match.group(), position))
                chunks.append(line[last:match.start()])
                last = match.end()
            return chunks + [line[last:]], marks

    return SpanPunctuation


def espeak_backend(language: str = LANGUAGE):
    """phonemizer's EspeakBackend as upstream configures it (punctuation kept, stress marks on),
    with `SpanPunctuation` in place of its punctuation handling and language-switch flags removed;
    one per language, made once."""
    with _ESPEAK_LOCK:  # functools.cache alone lets two threads make (and voice) one each
        return _make_backend(language)


def espeak_phonemize(text: str, language: str = LANGUAGE) -> str:
    """espeak-ng's phonemes of one line of text, one thread at a time."""
    with _ESPEAK_LOCK:
        return espeak_backend(language).phonemize([text])[0]


@functools.cache
def _make_backend(language: str):
    configure_espeak()
    from phonemizer.backend import EspeakBackend
    from phonemizer.punctuation import Punctuation

    # remove-flags: a word espeak-ng reads in another language comes wrapped in "(hi) ... (en-us)",
    # whose letters the model would speak; upstream's default keeps them (English text has none).
    backend = EspeakBackend(language=language, preserve_punctuation=True, with_stress=True,
                            language_switch="remove-flags")
    if not (isinstance(getattr(backend, "_punctuator", None), Punctuation) and hasattr(Punctuation, "_preserve_line")):
        raise RuntimeError("this phonemizer release keeps its punctuation handling elsewhere: the fix for "
                           "words lost after a decimal point (styletts2/text/espeak.py) must be updated")
    backend._punctuator = _span_punctuation_class()(Punctuation.default_marks())
    return backend


def espeak_version() -> str:
    """Version of the espeak-ng library in use, e.g. '1.52.0'."""
    configure_espeak()
    from phonemizer.backend import EspeakBackend

    with _ESPEAK_LOCK:
        return ".".join(str(part) for part in EspeakBackend.version())
