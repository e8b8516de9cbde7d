"""espeak-ng through phonemizer, using the library and voice data shipped in the `espeakng-loader` wheel.

phonemizer must be told both where the shared library is and where its data lives: with the
library set but no data path, espeak-ng aborts the whole process when the voice is loaded. Both
are set once, before the first backend is created. The backend itself is slow to create, so one
per language is cached.

Different espeak-ng versions phonemize some sentences differently; `espeak_version()` is recorded
with every trained or exported model so training and inference can be checked to agree.
"""
import functools
import os

LANGUAGE = "en-us"


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


@functools.cache
def espeak_backend(language: str = LANGUAGE):
    """phonemizer's EspeakBackend as upstream configures it (punctuation kept, stress marks on)."""
    configure_espeak()
    from phonemizer.backend import EspeakBackend

    return EspeakBackend(language=language, preserve_punctuation=True, with_stress=True)


def espeak_version() -> str:
    """Version of the espeak-ng library in use, e.g. '1.52.0'."""
    configure_espeak()
    from phonemizer.backend import EspeakBackend

    return ".".join(str(part) for part in EspeakBackend.version())
