"""Generate a tiny LJSpeech-layout corpus with espeak-ng, for tests and demos.

    python -m styletts2.data.make_corpus OUT --n 64 [--voices en-us,en-gb+f3] [--seed 0] [--sentences wide]

writes
    OUT/metadata.csv                 `id|text|normalized text` (LJSpeech)
    OUT/wavs/<id>.wav                24000 Hz mono PCM16
    OUT/train_list.txt, val_list.txt `wavs/<id>.wav|phonemes|speaker` (upstream's list format)
    OUT/OOD_texts.txt                one phoneme string per line (upstream's out-of-distribution texts)
    OUT/word_timings.json            espeak-ng's own start time of every word of every clip (seconds;
                                     see `word_timings.py`): the reference for the aligner's boundaries
    OUT/text_pool.txt                the pool's sentences (normalized) that no validation clip reads, one a
                                     line: text without audio, for PL-BERT (`TEXT_POOL_FILE`)

Each voice is one speaker with its own speaking rate, pitch and pitch range drawn from the seed.
The output depends only on the arguments (and the espeak-ng version): the same command writes the
same bytes. Every clip is long enough for the style encoder; a short sentence gets a second sentence
appended rather than silence. Sentences come from a pool: `base` (104 sentences, the default) or
`wide` (those and 143 more, `wide_sentences.py`: a larger vocabulary, no repeats below 247 clips).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from styletts2.audio.io import resample, save_wav
from styletts2.data.espeak_synth import EspeakSynthesizer, Voice, WordTiming
from styletts2.data.wide_sentences import WIDE_SENTENCES
from styletts2.data.word_timings import TIMINGS_FILE
from styletts2.errors import add_debug_flag, run_guarded
from styletts2.text.phonemizer import EspeakPhonemizer

SAMPLE_RATE = 24000
# The style encoder needs >= 80 mel frames (hop 300); keep a margin above 80 * 300 samples.
MIN_SECONDS = 1.25
PEAK = 0.95

# (text, normalized text); most sentences need no normalization, a few carry digits or abbreviations.
SENTENCES: tuple[tuple[str, str], ...] = tuple(
    (s, s) if isinstance(s, str) else s
    for s in (
        "The kettle whistled while the rain tapped against the kitchen window.",
        "Please close the gate behind you.",
        "A small boat drifted slowly toward the northern shore.",
        "Nobody expected the library to open on a Sunday morning.",
        "She painted the fence a bright shade of yellow.",
        "Can you hear the bells ringing from the old tower?",
        "The recipe calls for two eggs and a cup of flour.",
        "We walked along the river until the sun went down.",
        "His bicycle had a flat tire and a broken bell.",
        "What a wonderful surprise that was!",
        "The committee will announce its decision next week.",
        "Three owls were sitting quietly on the branch.",
        "I forgot my umbrella at the station again.",
        "The children built a castle out of wet sand.",
        "Every winter the lake freezes solid for a month.",
        "He opened the letter and read it twice.",
        "Fresh bread smells better than almost anything else.",
        "The orchestra tuned their instruments before the concert began.",
        "Turn left at the bakery, then walk straight ahead.",
        "Our neighbor keeps bees in the back garden.",
        "Why did the train stop in the middle of the field?",
        "The museum displays a collection of ancient coins.",
        "A gentle breeze carried the scent of pine needles.",
        "She answered every question with patience and care.",
        "The old clock on the wall stopped at midnight.",
        "Bring a warm coat, because the evenings get cold.",
        "The farmer counted his sheep as they entered the barn.",
        "Thunder rolled across the valley late in the afternoon.",
        "My grandmother wrote her recipes on small paper cards.",
        "The pilot announced that we would land shortly.",
        "Is this the road that leads to the harbor?",
        "A single candle lit the narrow stone staircase.",
        "They planted tomatoes, beans and sunflowers in the spring.",
        "The painter mixed blue and white to match the sky.",
        "Lightning struck the tall oak tree near the church.",
        "Few people remember the name of the first mayor.",
        "The cat watched the goldfish with great interest.",
        "He practiced the violin for an hour each evening.",
        "The market was crowded with shoppers and street musicians.",
        "Do not forget to water the plants on Friday.",
        "The engineer explained how the bridge was designed.",
        "Snow covered the hills like a thick white blanket.",
        "She laughed so hard that tears ran down her cheeks.",
        "The ship sailed east across the calm blue sea.",
        "Where did you find such a beautiful wooden box?",
        "Our team finally won the championship after many years.",
        "The baker wakes up long before anyone else in town.",
        "A flock of geese flew south over the quiet village.",
        "The detective noticed a muddy footprint near the door.",
        "Honey never spoils if it is stored properly.",
        "The students listened carefully to the visiting scientist.",
        "He wrapped the gift in silver paper and ribbon.",
        "The fog lifted just as the ferry left the dock.",
        "Could you pass me the salt and the pepper, please?",
        "The garden was full of roses, tulips and daisies.",
        "Mountains rise sharply behind the little fishing town.",
        "She keeps a diary of every place she has visited.",
        "The lamp flickered twice and then went dark.",
        "An old map was hidden inside the dusty book.",
        "The runners crossed the finish line almost together.",
        "Listen carefully, because I will only say this once.",
        "The soup needs a little more salt and pepper.",
        "A rainbow appeared after the storm had passed.",
        "The mechanic fixed the engine in less than an hour.",
        "Have you ever seen a whale in the open ocean?",
        "The teacher wrote the answer on the blackboard in chalk.",
        "Quiet streets and empty shops made the town feel strange.",
        "The puppy chased its tail around the living room.",
        "We shared stories around the campfire until midnight.",
        "The mail carrier whistled a cheerful tune on her route.",
        "Heavy clouds gathered over the distant hills.",
        "He carefully balanced the books on the narrow shelf.",
        "The festival lasts for three days every summer.",
        "I would like a cup of tea with lemon.",
        "The photographer waited hours for the perfect light.",
        "Wild strawberries grow along the edge of the forest.",
        "The captain ordered the crew to raise the sails.",
        "Dinner will be ready in about twenty minutes.",
        "The river flooded the meadow after a week of rain.",
        "She solved the puzzle faster than anyone expected.",
        "Bright lanterns hung above the narrow winding streets.",
        "The doctor said that rest would help him recover.",
        "Which of these paintings do you like the most?",
        "The wind blew the leaves across the empty playground.",
        "A curious fox crept closer to the sleeping campers.",
        "The choir sang softly as the lights dimmed.",
        "Grandfather repaired the clock with a tiny screwdriver.",
        "Stars filled the sky above the quiet desert.",
        ("The train leaves at 7 o'clock sharp.", "The train leaves at seven o'clock sharp."),
        ("Dr. Miller lives on Elm St. near the park.", "Doctor Miller lives on Elm Street near the park."),
        ("We bought 12 apples and 3 pears at the market.", "We bought twelve apples and three pears at the market."),
        ("The bridge is 250 meters long.", "The bridge is two hundred fifty meters long."),
        ("Mr. Jones has lived here since 1998.", "Mister Jones has lived here since nineteen ninety-eight."),
        ("It took 45 minutes to climb the hill.", "It took forty-five minutes to climb the hill."),
        ("Room 9 is at the end of the hall.", "Room nine is at the end of the hall."),
        ("The concert starts on May 3rd.", "The concert starts on May third."),
        ("About 80% of the seats were taken.", "About eighty percent of the seats were taken."),
        ("She scored 100 points in the final round!", "She scored one hundred points in the final round!"),
        ("Mrs. Patel teaches chemistry at the high school.", "Missus Patel teaches chemistry at the high school."),
        ("The package weighs 2 kilograms.", "The package weighs two kilograms."),
    )
)

TEXT_POOL_FILE = "text_pool.txt"  # the pool's text without audio, for PL-BERT (write_text_pool)

# Longer than any upstream `min_length` (50 phoneme characters), and not in SENTENCES.
OOD_SENTENCES: tuple[str, ...] = (
    "Scientists believe the comet will return in roughly seventy six years.",
    "The village council argued for hours about the new parking rules.",
    "Across the valley, the sound of church bells echoed between the cliffs.",
    "She carefully copied every word of the ancient manuscript by candlelight.",
    "Nobody could explain why the lighthouse keeper left his post that night.",
    "The museum guard claimed the statue had moved during the thunderstorm.",
    "After the long winter, the first green shoots pushed through the frozen soil.",
    "Our professor insisted that every experiment be repeated at least three times.",
    "The market traders packed away their stalls as the evening rain began.",
    "His grandfather told stories of sailing around the cape in a wooden ship.",
    "The orchestra rehearsed the difficult symphony until well past midnight.",
    "A thin layer of frost covered the windows of the abandoned farmhouse.",
)

SENTENCE_POOLS: dict[str, tuple[tuple[str, str], ...]] = {
    "base": SENTENCES,
    "wide": SENTENCES + tuple((s, s) for s in WIDE_SENTENCES),
}

DEFAULT_VOICES = ("en-us",)
VAL_FRACTION = 0.1


@dataclass(frozen=True)
class Speaker:
    """One voice with its speaking style; `id` is the speaker column of the list files."""

    id: int
    voice: Voice
    rate: int
    pitch: int
    pitch_range: int


@dataclass(frozen=True)
class Clip:
    id: str
    speaker: Speaker
    text: str
    normalized: str


def make_speakers(voices: Sequence[str], rng: np.random.Generator) -> list[Speaker]:
    """Give every voice its own rate (wpm), pitch and pitch range so the speakers differ."""
    return [
        Speaker(
            id=i,
            voice=Voice.parse(v),
            rate=int(rng.integers(145, 191)),
            pitch=int(rng.integers(30, 71)),
            pitch_range=int(rng.integers(35, 76)),
        )
        for i, v in enumerate(voices)
    ]


def speak_as_corpus(text: str, voice: str = DEFAULT_VOICES[0], seed: int = 0,
                    synth: EspeakSynthesizer | None = None) -> np.ndarray:
    """`text` at 24 kHz, read by the first speaker of `make_corpus(..., voices=[voice, ...], seed=seed)`
    (its speakers are drawn first from the seed): the teacher's clip of a sentence held out of it."""
    speaker = make_speakers([voice], np.random.default_rng(seed))[0]
    wave, rate = (synth or EspeakSynthesizer()).synthesize(text, speaker.voice, rate=speaker.rate, pitch=speaker.pitch,
                                                           pitch_range=speaker.pitch_range)
    return resample(wave, rate, SAMPLE_RATE)


def first_clip(corpus: str | Path) -> Path:
    """The corpus's first clip (by name): a reference clip of its first speaker's voice."""
    clips = sorted(Path(corpus, "wavs").glob("*.wav"))
    if not clips:
        raise FileNotFoundError(f"no clips in {Path(corpus, 'wavs')}")
    return clips[0]


def plan_clips(n: int, speakers: Sequence[Speaker], rng: np.random.Generator,
               sentences: Sequence[tuple[str, str]] = SENTENCES) -> list[Clip]:
    """Speakers in turn; sentences in a seeded order, reused only once all were used."""
    order: list[int] = []
    while len(order) < n:
        order.extend(rng.permutation(len(sentences)).tolist())
    clips = []
    for i in range(n):
        speaker = speakers[i % len(speakers)]
        text, normalized = sentences[order[i]]
        clips.append(Clip(f"SPK{speaker.id:02d}-{i:04d}", speaker, text, normalized))
    return clips


def render(clip: Clip, synth: EspeakSynthesizer, rng: np.random.Generator,
           sentences: Sequence[tuple[str, str]] = SENTENCES) -> tuple[Clip, np.ndarray, list[WordTiming]]:
    """Synthesize at 24 kHz, with espeak-ng's word timings; too-short clips get another sentence
    appended (text and audio agree)."""
    while True:
        speaker = clip.speaker
        wave, rate, words = synth.synthesize_with_words(
            clip.normalized, speaker.voice, rate=speaker.rate, pitch=speaker.pitch, pitch_range=speaker.pitch_range
        )
        wave = resample(wave, rate, SAMPLE_RATE)
        if len(wave) >= MIN_SECONDS * SAMPLE_RATE:
            break
        extra_text, extra_normalized = sentences[int(rng.integers(len(sentences)))]
        clip = Clip(clip.id, speaker, f"{clip.text} {extra_text}", f"{clip.normalized} {extra_normalized}")
    peak = float(np.abs(wave).max())
    if peak > PEAK:  # resampling can overshoot full scale
        wave = wave * (PEAK / peak)
    return clip, wave.astype(np.float32), words


def split_validation(clips: Sequence[Clip], rng: np.random.Generator, fraction: float) -> set[str]:
    """Ids held out for validation: a seeded pick of ceil(fraction * n), at least one per list."""
    if len(clips) < 2 or fraction <= 0:
        return set()
    n_val = min(len(clips) - 1, max(1, math.ceil(fraction * len(clips))))
    return {clips[i].id for i in rng.choice(len(clips), size=n_val, replace=False)}


def _check_arguments(out: str | Path, n: int, voices: Sequence[str], val_fraction: float, sentences: str) -> None:
    """make_corpus's arguments, each refused with a ValueError naming it (before any clip is made)."""
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    if not voices:
        raise ValueError("at least one voice is needed")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"the validation fraction must be at least 0 and below 1, got {val_fraction}")
    if Path(out).exists() and not Path(out).is_dir():
        raise ValueError(f"{out} is a file: give a folder for the corpus")
    if sentences not in SENTENCE_POOLS:
        raise ValueError(f"unknown sentence pool {sentences!r}; choose from {sorted(SENTENCE_POOLS)}")


def make_corpus(
    out: str | Path,
    n: int = 64,
    voices: Sequence[str] = DEFAULT_VOICES,
    seed: int = 0,
    val_fraction: float = VAL_FRACTION,
    phonemizer: Callable[[str], str] | None = None,
    sentences: str = "base",
) -> Path:
    """Write the corpus described in the module docstring into `out`; returns `out`.

    sentences: the pool to draw from, a key of SENTENCE_POOLS.

    phonemizer: text -> phoneme string for the list files (default: `styletts2.text`'s espeak-ng
    front-end, the one training uses).
    """
    _check_arguments(out, n, voices, val_fraction, sentences)
    pool = SENTENCE_POOLS[sentences]
    phonemizer = phonemizer or EspeakPhonemizer()
    out = Path(out)
    (out / "wavs").mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    speakers = make_speakers(voices, rng)
    synth = EspeakSynthesizer()  # fresh instance: espeak-ng output depends on its call history
    clips, timings = [], {}
    for planned in plan_clips(n, speakers, rng, pool):
        clip, wave, words = render(planned, synth, rng, pool)
        save_wav(out / "wavs" / f"{clip.id}.wav", wave, SAMPLE_RATE)
        clips.append(clip)
        timings[clip.id] = {"seconds": len(wave) / SAMPLE_RATE,
                            "words": [[w.word, round(w.start, 5)] for w in words]}
    with open(out / TIMINGS_FILE, "w", encoding="utf-8", newline="\n") as f:  # one clip a line
        f.write("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
                                    for k, v in timings.items()) + "\n}\n")

    with open(out / "metadata.csv", "w", encoding="utf-8", newline="\n") as f:
        f.writelines(f"{c.id}|{c.text}|{c.normalized}\n" for c in clips)

    phonemes = [phonemizer(c.normalized) for c in clips]
    val_ids = split_validation(clips, rng, val_fraction)
    lists = {"train_list.txt": [], "val_list.txt": []}
    for clip, ps in zip(clips, phonemes, strict=True):
        name = "val_list.txt" if clip.id in val_ids else "train_list.txt"
        lists[name].append(f"wavs/{clip.id}.wav|{ps}|{clip.speaker.id}\n")
    for name, lines in lists.items():
        with open(out / name, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(lines)

    with open(out / "OOD_texts.txt", "w", encoding="utf-8", newline="\n") as f:
        f.writelines(f"{phonemizer(text)}\n" for text in OOD_SENTENCES)
    write_text_pool(out / TEXT_POOL_FILE, pool, [c.normalized for c in clips if c.id in val_ids])
    return out


def write_text_pool(path: Path, pool: Sequence[tuple[str, str]], validation_texts: Sequence[str]) -> None:
    """The pool's normalized sentences that no validation text contains (a short clip reads two),
    one a line. PL-BERT learns from text alone, as its pre-training reads far more text than any
    audio corpus holds; the held-out sentences (`OOD_SENTENCES`) are in no pool."""
    kept = [normalized for _, normalized in pool if not any(normalized in text for text in validation_texts)]
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(f"{line}\n" for line in kept)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m styletts2.data.make_corpus",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument("--n", type=int, default=64, help="number of clips")
    parser.add_argument(
        "--voices", default=",".join(DEFAULT_VOICES),
        help="comma-separated espeak-ng voices, one speaker each (language[+variant], e.g. en-gb+f3)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=VAL_FRACTION)
    parser.add_argument("--sentences", choices=sorted(SENTENCE_POOLS), default="base",
                        help="sentence pool: base (104) or wide (247, a larger vocabulary)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    voices = [v.strip() for v in args.voices.split(",") if v.strip()]

    def body() -> int:
        out = make_corpus(args.out, n=args.n, voices=voices, seed=args.seed, val_fraction=args.val_fraction,
                          sentences=args.sentences)
        print(f"wrote {args.n} clips from {len(voices)} voice(s) to {out}")
        return 0

    return run_guarded(parser.prog, body, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
