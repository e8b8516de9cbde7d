"""Cutting long inputs into pieces the model can take.

- `split_sentences`: long-form text -> sentences, synthesized one by one (upstream's long-form demo
  splits on '.'; here `. ! ? ; :` followed by whitespace end a piece and stay with it, except the
  period of a title or abbreviation such as 'Dr.', 'etc.' or 'U.S.', or of an initial: 'J.').
- `split_token_windows`: a token sequence longer than PL-BERT's 512 positions -> windows that fit,
  cut at spaces so no word is split and nothing is truncated.
"""
import re
import unicodedata

from .symbols import SPACE_ID

BERT_MAX_POSITIONS = 512

# A run of sentence-ending marks (with any closing quotes/brackets) followed by whitespace.
_SENTENCE_END = re.compile(r"""(?<=[.!?;:])["'”’»)\]]*\s+""")
_SPEAKABLE = re.compile(r"\w")
# A period that is part of an abbreviation or an initial, at the end of the text before it: no
# sentence ends there (normalized text has none left; this is for text read as written).
_ABBREVIATION_END = re.compile(
    r"(?:^|[\s(\[\"'“‘.])(?:Mr|Mrs|Ms|Mx|Dr|Prof|St|Mt|Ft|Jr|Sr|Rev|Hon|Gen|Col|Capt|Lt|Sgt|Gov|Sen|Rep|Pres|"
    r"vs|etc|e\.g|i\.e|cf|approx|Inc|Ltd|Co|Corp|Bros|No|Nos|Vol|vol|pp|p|Ch|ch|Fig|fig|Eq|Jan|Feb|Mar|Apr|"
    r"Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|[A-Za-z])\.$")


def remove_control_characters(text: str) -> str:
    """`text` with each control character (Unicode Cc: NUL, ESC, DEL, C1 codes...) and lone surrogate
    replaced by a space. espeak-ng reads text as a C string, so a NUL would silently end it there;
    whitespace controls (tab, newline) are spaces to it anyway."""
    if text.isprintable():  # the common case: nothing to do
        return text
    return "".join(" " if unicodedata.category(c) in ("Cc", "Cs") else c for c in text)


def split_sentences(text: str) -> list[str]:
    """Split `text` after `.`, `!`, `?`, `;` or `:` followed by whitespace; the marks stay with their
    sentence. Pieces with nothing speakable (e.g. a lone '...') are merged into a neighbour, so no
    piece is empty. Raises ValueError for empty text."""
    if not text.strip():
        raise ValueError("cannot split empty or whitespace-only text into sentences")
    pieces = []
    last = 0
    for match in _SENTENCE_END.finditer(text):
        if _ABBREVIATION_END.search(text, max(0, match.start() - 8), match.start()):
            continue  # 'Dr. Smith', 'etc. and', 'J. R. R. Tolkien'
        end = match.start() + len(match.group().rstrip())  # keep trailing quotes, drop the space
        pieces.append(text[last:end].strip())
        last = match.end()
    pieces.append(text[last:].strip())
    pieces = [p for p in pieces if p]

    sentences: list[str] = []
    for piece in pieces:
        if sentences and not _SPEAKABLE.search(piece):
            sentences[-1] += " " + piece
        elif sentences and not _SPEAKABLE.search(sentences[-1]):
            sentences[-1] += " " + piece
        else:
            sentences.append(piece)
    return sentences


def split_token_windows(
    ids: list[int], max_len: int = BERT_MAX_POSITIONS, n_special: int = 2, space_id: int = SPACE_ID
) -> list[list[int]]:
    """Cut `ids` (without pad tokens) into windows of at most `max_len - n_special` ids, so each
    window still fits `max_len` once its pad tokens are added (n_special=2 covers both the training
    framing `[0] + ids + [0]` and the inference framing `[0] + ids`).

    Each cut is made at the last space inside the window and that space is dropped, so joining the
    windows with `space_id` gives back `ids`. Only a single word longer than a whole window is cut
    inside the word, at the window edge, with nothing dropped. Raises ValueError for empty `ids`.
    """
    limit = max_len - n_special
    if limit < 1:
        raise ValueError(f"max_len {max_len} leaves no room next to {n_special} special tokens")
    if not ids:
        raise ValueError("cannot split an empty token sequence")
    windows = []
    rest = list(ids)
    while len(rest) > limit:
        window = rest[: limit + 1]  # a space right after the limit is a clean cut too
        cut = max((i for i, t in enumerate(window) if t == space_id and i > 0), default=None)
        if cut is None:
            windows.append(rest[:limit])
            rest = rest[limit:]
        else:
            windows.append(rest[:cut])
            rest = rest[cut + 1:]
    if rest:
        windows.append(rest)
    return windows
