"""Text normalization: written text -> the words to phonemize, chosen by language.

It runs before phonemization in the shared text front-end (`styletts2.text.pieces`), so the torch
synthesizer, the onnxruntime runtime and training (`styletts2.data.readers.phonemize_records`)
read text the same way. Text that is already phonemes (upstream list files) never comes here.

- `TextNormalizer(language, **settings)`: the normalizer of an espeak-ng language (the module
  whose LANGUAGES holds the longest prefix of it: 'en-gb' -> english.py) with its settings;
  `describe()` is what model.json records, `from_description()` rebuilds it, `key` names it in
  the phoneme cache's file name.
- `normalize(text, language='en-us', **settings)`: the same, as one call.
- `python -m styletts2.text.normalize "text"` prints the normalized text (`--bench` times it).

Languages: english.py for every English voice; passthrough.py (markup and unspeakable characters
out, nothing else) for the rest. Adding a language is one file here (see passthrough.py). Pure
Python, no torch: the runtime imports it.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import json
import pkgutil
import warnings
from types import ModuleType

from ._cleanup import UnspeakableCharacterWarning

__all__ = ["TextNormalizer", "normalize", "NormalizerError", "NormalizerVersionWarning",
           "UnspeakableCharacterWarning", "languages"]

FALLBACK = "passthrough"


class NormalizerError(ValueError):
    """An unknown normalizer or setting."""


class NormalizerVersionWarning(UserWarning):
    """A model records a normalizer version other than this code's: some text may be read differently
    from training."""


@functools.cache
def _modules() -> dict[str, ModuleType]:
    """The normalizer modules of this package by NAME: every public module with LANGUAGES."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "LANGUAGES"):
            found[module.NAME] = module
    return found


def languages() -> dict[str, str]:
    """{language code or prefix: normalizer name} (every other language: the pass-through)."""
    return {code: name for name, module in _modules().items() for code in module.LANGUAGES}


def _module_for(language: str) -> ModuleType:
    wanted, best = language.lower(), (0, _modules()[FALLBACK])
    for module in _modules().values():
        for code in module.LANGUAGES:
            if (wanted == code or wanted.startswith(code + "-")) and len(code) > best[0]:
                best = (len(code), module)
    return best[1]


class TextNormalizer:
    """The normalizer of `language` (an espeak-ng language code) with `settings` (the module's
    DEFAULTS, overridden by name); `name` picks a normalizer module by name instead."""

    def __init__(self, language: str = "en-us", name: str | None = None, **settings):
        if name is not None and name not in _modules():
            raise NormalizerError(f"unknown text normalizer {name!r}; this version has {sorted(_modules())}")
        self.module = _modules()[name] if name is not None else _module_for(language)
        unknown = sorted(set(settings) - set(self.module.DEFAULTS))
        if unknown:
            raise NormalizerError(f"the {self.module.NAME} normalizer has no setting(s) {unknown}; "
                                  f"its settings are {self.module.DEFAULTS}")
        for key, value in settings.items():
            if type(value) is not type(self.module.DEFAULTS[key]):
                raise NormalizerError(f"setting {key!r} must be {type(self.module.DEFAULTS[key]).__name__}, "
                                      f"got {value!r}")
        self.language = language
        self.settings = {**self.module.DEFAULTS, **settings}

    @property
    def name(self) -> str:
        return self.module.NAME

    @property
    def version(self) -> str:
        return self.module.VERSION

    def __call__(self, text: str) -> str:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return self.module.normalize(text, self.language, self.settings)

    def describe(self) -> dict:
        """What a model records (model.json's `text_normalizer`, the phoneme cache)."""
        return {"name": self.name, "version": self.version, "language": self.language,
                "settings": dict(sorted(self.settings.items()))}

    @property
    def key(self) -> str:
        """Short name of this normalizer, version and settings, for file names."""
        digest = hashlib.sha256(json.dumps(self.describe(), sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.name}-{self.version}-{digest}"

    @classmethod
    def from_description(cls, entry: dict, where: str = "the model") -> TextNormalizer:
        """The normalizer `describe()` gave; a different version of it is a NormalizerVersionWarning."""
        normalizer = cls(entry["language"], name=entry["name"], **entry.get("settings", {}))
        if str(entry.get("version")) != normalizer.version:
            warnings.warn(f"{where} records text normalizer {entry['name']} version {entry.get('version')}, "
                          f"this is version {normalizer.version}: some text may be read differently from "
                          "training", NormalizerVersionWarning, stacklevel=2)
        return normalizer

    def __eq__(self, other) -> bool:
        return isinstance(other, TextNormalizer) and self.describe() == other.describe()

    def __repr__(self) -> str:
        return f"TextNormalizer({self.describe()})"


@functools.lru_cache(maxsize=32)
def _normalizer(language: str, settings: frozenset) -> TextNormalizer:
    return TextNormalizer(language, **dict(settings))


def normalize(text: str, language: str = "en-us", **settings) -> str:
    """`text` as the words to phonemize in `language` (see `TextNormalizer`)."""
    return _normalizer(language, frozenset(settings.items()))(text)
