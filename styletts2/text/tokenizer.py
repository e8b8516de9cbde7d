"""Phoneme string -> token ids over the 178-symbol table.

Two framings exist and the choice is always made by the caller:
- training (upstream's data loader): `[PAD] + ids + [PAD]`  -> `encode(p, add_bos=True, add_eos=True)`
- inference (upstream's demo notebooks): `[PAD] + ids`       -> `encode(p, add_bos=True, add_eos=False)`
The pad symbol `$` (id 0) doubles as both boundary tokens.

Characters outside the table are dropped, as upstream does, but never silently: each call that
drops something issues one `UnknownSymbolWarning` naming every dropped character. With
`strict=True` they raise `UnknownSymbolError` instead.
"""
import unicodedata
import warnings
from collections import Counter
from collections.abc import Iterable

from .symbols import PAD_ID, SYMBOL_TO_ID, SYMBOLS


class UnknownSymbolWarning(UserWarning):
    """Characters outside the symbol table were dropped from a phoneme string."""


class UnknownSymbolError(ValueError):
    """A phoneme string holds characters outside the symbol table (strict mode)."""


class NoKnownSymbolError(ValueError):
    """A phoneme string holds no symbol of the table besides spaces ('( ( (')."""


def describe_char(char: str) -> str:
    """`'ʧ' (U+02A7 LATIN SMALL LETTER TC DIGRAPH)`: readable even for invisible characters."""
    name = unicodedata.name(char, "unnamed")
    return f"{char!r} (U+{ord(char):04X} {name})"


def preview_text(text: str, limit: int = 60) -> str:
    """`text` quoted for an error message, cut after `limit` characters."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


class Tokenizer:
    """Maps phoneme strings to token ids and back.

    strict: raise `UnknownSymbolError` on characters outside the table instead of dropping them
        with a warning.
    """

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.symbol_to_id = SYMBOL_TO_ID
        self.symbols = SYMBOLS
        self.pad_id = PAD_ID

    def __len__(self) -> int:
        return len(self.symbols)

    def unknown_symbols(self, phonemes: str) -> Counter:
        """Characters of `phonemes` that are not in the table, with their counts."""
        return Counter(c for c in phonemes if c not in self.symbol_to_id)

    def encode(self, phonemes: str, *, add_bos: bool, add_eos: bool) -> list[int]:
        """Token ids of `phonemes`; `add_bos`/`add_eos` put the pad id in front/behind.

        Training data uses add_bos=True, add_eos=True; upstream inference add_bos=True, add_eos=False.
        Raises ValueError for empty or whitespace-only text, NoKnownSymbolError (a ValueError) for text
        with no known symbol besides spaces.
        """
        if not isinstance(phonemes, str):
            raise TypeError(f"phonemes must be a str, got {type(phonemes).__name__}")
        if not phonemes.strip():
            raise ValueError(f"cannot tokenize empty or whitespace-only phoneme text: {phonemes!r}")
        unknown = self.unknown_symbols(phonemes)
        if unknown:
            listing = ", ".join(f"{describe_char(c)} x{n}" for c, n in unknown.items())
            message = f"phoneme text {preview_text(phonemes)} has symbols outside the table: {listing}"
            if self.strict:
                raise UnknownSymbolError(message)
            warnings.warn(message + "; they were dropped", UnknownSymbolWarning, stacklevel=2)
        ids = [self.symbol_to_id[c] for c in phonemes if c not in unknown]
        if not any(i != self.symbol_to_id[" "] for i in ids):
            raise NoKnownSymbolError(f"phoneme text {preview_text(phonemes)} has no known symbol besides spaces")
        return [self.pad_id] * add_bos + ids + [self.pad_id] * add_eos

    def encode_for_training(self, phonemes: str) -> list[int]:
        """`[0] + ids + [0]`, the framing of upstream's training data."""
        return self.encode(phonemes, add_bos=True, add_eos=True)

    def encode_for_inference(self, phonemes: str) -> list[int]:
        """`[0] + ids`, the framing upstream's inference uses."""
        return self.encode(phonemes, add_bos=True, add_eos=False)

    def decode(self, ids: Iterable[int], strip_pad: bool = True) -> str:
        """Phoneme string of `ids`; pad ids are left out unless `strip_pad=False`."""
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.symbols):
                raise ValueError(f"token id {i} is outside the table (0..{len(self.symbols) - 1})")
            if strip_pad and i == self.pad_id:
                continue
            out.append(self.symbols[i])
        return "".join(out)
