"""Readers, phoneme cache, dataset, collate, sampler and validation (styletts2.data)."""
import json

import gin
import numpy as np
import pytest
import soundfile as sf
import torch

from styletts2.data.collate import Batch, Collater, crop_windows
from styletts2.data.dataset import SpeechDataset
from styletts2.data.readers import (
    CorpusFormatError,
    Issue,
    cache_path,
    corpus_normalizer,
    phonemize_records,
    read_corpus,
    read_list,
    read_ljspeech,
    read_ood_texts,
)
from styletts2.data.sampler import LengthBucketBatchSampler
from styletts2.data.validate import scan_corpus, validate_records

SR = 24000
PHONEMES = "ðɪs ɪz ɐ tˈɛst ."


def write_wav(path, seconds, sr=SR, amplitude=0.3, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = amplitude * np.random.default_rng(seed).uniform(-1, 1, int(seconds * sr))
    sf.write(str(path), wave.astype(np.float32), sr, subtype="PCM_16")
    return path


class CountingPhonemizer:
    """Stand-in for EspeakPhonemizer: deterministic fake phonemes, counts calls."""

    language = "en-us"

    def __init__(self, version="1.52.0"):
        self.version = version
        self.calls = []

    def __call__(self, text):
        self.calls.append(text)
        if text == "unpronounceable":
            raise ValueError("espeak-ng produced no phonemes")
        return " ".join(w[::-1] for w in text.lower().split())


# --- readers ------------------------------------------------------------------------------


def test_read_ljspeech_prefers_normalized_text(tmp_path):
    meta = tmp_path / "metadata.csv"
    meta.write_text("LJ1|It costs 5 dollars.|It costs five dollars.\nLJ2|Plain text.\n\nLJ3|Blank norm.|\n", "utf-8")
    records = read_ljspeech(meta)
    assert [r.text for r in records] == ["It costs five dollars.", "Plain text.", "Blank norm."]
    assert [r.line for r in records] == [1, 2, 4]
    assert records[0].wav == tmp_path / "wavs" / "LJ1.wav"
    assert all(r.phonemes is None and r.speaker == 0 and r.source == meta for r in records)


def test_read_list_format(tmp_path):
    lst = tmp_path / "train_list.txt"
    lst.write_text(f"a.wav|{PHONEMES}|3\nsub/b.wav|{PHONEMES}\n", "utf-8")
    records = read_list(lst, root=tmp_path / "root")
    assert [(r.wav, r.speaker, r.phonemes) for r in records] == [
        (tmp_path / "root" / "a.wav", 3, PHONEMES),
        (tmp_path / "root" / "sub" / "b.wav", 0, PHONEMES),
    ]
    assert read_list(lst)[0].wav == tmp_path / "a.wav"  # default root: the list's folder


def test_malformed_lines_name_file_and_line(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text(f"a.wav|{PHONEMES}|0\nno separators here\nc.wav|{PHONEMES}|spk\nd.wav|{PHONEMES}|1\n", "utf-8")
    with pytest.raises(CorpusFormatError, match=rf"list.txt:2: malformed"):
        read_list(lst)
    issues = []
    records = read_list(lst, issues=issues)
    assert [r.line for r in records] == [1, 4]
    assert [(i.reason, i.line) for i in issues] == [("malformed", 2), ("malformed", 3)]
    assert "'spk' is not an integer" in str(issues[1]) and str(lst) in str(issues[1])

    meta = tmp_path / "metadata.csv"
    meta.write_text("LJ1|ok|ok\nLJ2|a|b|c\n|no id\n", "utf-8")
    issues = []
    assert len(read_ljspeech(meta, issues=issues)) == 1
    assert [i.line for i in issues] == [2, 3]


def test_read_corpus_detects_the_format(tmp_path):
    (tmp_path / "metadata.csv").write_text("X1|Some text.|Some text.\n", "utf-8")
    (tmp_path / "list.txt").write_text(f"wavs/X1.wav|{PHONEMES}|0\n", "utf-8")
    assert read_corpus(tmp_path)[0].text == "Some text."
    assert read_corpus(tmp_path / "list.txt")[0].phonemes == PHONEMES


def test_read_ood_texts_both_layouts(tmp_path):
    bare, listed = tmp_path / "a.txt", tmp_path / "b.txt"
    bare.write_text(f"{PHONEMES}\n\nsˈɛkənd .\n", "utf-8")
    listed.write_text(f"x/1.wav|{PHONEMES}|12\n", "utf-8")
    assert read_ood_texts(bare) == [PHONEMES, "sˈɛkənd ."]
    assert read_ood_texts(listed) == [PHONEMES]


# --- phoneme cache ------------------------------------------------------------------------


def test_phoneme_cache_hit_and_version_key(tmp_path):
    meta = tmp_path / "metadata.csv"
    meta.write_text("A|Hello world.|\nB|Hello world.|\nC|Good bye.|\nD| |\nE|unpronounceable|\n", "utf-8")
    records = read_ljspeech(meta)
    phonemizer = CountingPhonemizer()
    issues = []
    out = phonemize_records(records, phonemizer, issues=issues)
    assert sorted(phonemizer.calls) == ["Good bye.", "Hello world.", "unpronounceable"]  # once per text
    assert [r.phonemes for r in out] == ["olleh .dlrow", "olleh .dlrow", "doog .eyb", ""]
    assert [(i.reason, i.line) for i in issues] == [("phonemize_failed", 5)]
    cache = cache_path(tmp_path, "en-us", "1.52.0", corpus_normalizer().key)  # text is normalized first
    assert json.loads(cache.read_text("utf-8"))["phonemes"]["Good bye."] == "doog .eyb"

    again = CountingPhonemizer()
    assert phonemize_records(records[:4], again) == out
    assert again.calls == []  # everything came from the cache

    other_version = CountingPhonemizer(version="1.51.1")
    phonemize_records(records[:4], other_version)
    assert sorted(other_version.calls) == ["Good bye.", "Hello world."]
    assert cache_path(tmp_path, "en-us", "1.51.1", corpus_normalizer().key).exists()


def test_records_with_phonemes_are_not_phonemized(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text(f"a.wav|{PHONEMES}|0\n", "utf-8")
    phonemizer = CountingPhonemizer()
    assert phonemize_records(read_list(lst), phonemizer)[0].phonemes == PHONEMES
    assert phonemizer.calls == [] and not list(tmp_path.glob(".phonemes*"))


# --- validation ---------------------------------------------------------------------------


def test_validation_reports_every_broken_clip(tmp_path):
    wavs = tmp_path / "wavs"
    write_wav(wavs / "good.wav", 1.5)
    write_wav(wavs / "good8k.wav", 1.2, sr=8000)
    write_wav(wavs / "short.wav", 0.5)
    write_wav(wavs / "silent.wav", 1.5, amplitude=0.0)
    (wavs / "garbage.wav").write_bytes(b"RIFF not really a wave file")
    lst = tmp_path / "list.txt"
    lst.write_text(
        "\n".join([
            f"wavs/good.wav|{PHONEMES}|0",
            f"wavs/good8k.wav|{PHONEMES}|0",
            f"wavs/missing.wav|{PHONEMES}|0",
            f"wavs/garbage.wav|{PHONEMES}|0",
            f"wavs/short.wav|{PHONEMES}|0",
            f"wavs/silent.wav|{PHONEMES}|0",
            "wavs/good.wav|tèst wíth ünknöwn|0",
            "wavs/good.wav| |0",
            "a malformed line",
        ]) + "\n",
        "utf-8",
    )
    report = scan_corpus(lst, phonemizer=CountingPhonemizer())
    assert [r.wav.name for r in report.good] == ["good.wav", "good8k.wav"]
    assert report.counts() == {
        "missing": 1, "unreadable": 1, "too_short": 1, "silent": 1,
        "unknown_symbols": 1, "empty_text": 1, "malformed": 1,
    }
    lines = {i.reason: i.line for i in report.issues}
    assert lines == {
        "missing": 3, "unreadable": 4, "too_short": 5, "silent": 6,
        "unknown_symbols": 7, "empty_text": 8, "malformed": 9,
    }
    summary = report.summary()
    assert "2 of 9 clips usable" in summary and f"{lst}:5: too_short" in summary
    assert "U+00E8" in summary  # the unknown character is named

    headers_only = validate_records(read_list(lst, issues=[]), silence_peak=None)
    assert "silent" not in headers_only.counts()


def test_validation_threshold_is_80_frames(tmp_path):
    frames_80 = write_wav(tmp_path / "a.wav", 79 * 300 / SR)  # 23700 samples -> 80 frames
    frames_79 = write_wav(tmp_path / "b.wav", (79 * 300 - 1) / SR)
    records = read_list(_list(tmp_path, [frames_80, frames_79]))
    assert [r.wav.name for r in validate_records(records).good] == ["a.wav"]


def _list(folder, wavs, speakers=None):
    lst = folder / "list.txt"
    speakers = speakers or [0] * len(wavs)
    lst.write_text("".join(f"{w.name}|{PHONEMES}|{s}\n" for w, s in zip(wavs, speakers)), "utf-8")
    return lst


# --- dataset and collate ------------------------------------------------------------------


@pytest.fixture
def records(tmp_path):
    durations = [1.2, 2.0, 1.5, 1.7, 1.1, 2.2]
    wavs = [write_wav(tmp_path / f"{i}.wav", d, seed=i) for i, d in enumerate(durations)]
    return read_list(_list(tmp_path, wavs, speakers=[0, 1, 0, 1, 0, 1]))


def test_dataset_item_follows_upstream_layout(records):
    ds = SpeechDataset(records, ood_texts=["short .", "ɐ lˈɔŋ ˈɛnʌf ˈaʊt ʌv dɪstɹˈɪbjuːʃən tˈɛkst fɔːɹ stˈeɪdʒ tˈuː ."])
    item = ds[1]
    assert item.tokens[0] == 0 and item.tokens[-1] == 0 and len(item.tokens) == len(PHONEMES) + 2
    assert item.wave.shape == (int(2.0 * SR) + 10000,)
    assert torch.all(item.wave[:5000] == 0) and torch.all(item.wave[-5000:] == 0)
    full_frames = item.wave.shape[0] // 300 + 1
    assert item.mel.shape == (80, full_frames // 2 * 2)
    assert item.ref_mel.shape[0] == 80 and item.ref_mel.shape[1] <= 192
    assert item.speaker == 1 and item.ood_tokens is not None and len(item.ood_tokens) > 50
    assert ds.mel_lengths()[1] == item.mel.shape[1]


def test_dataset_random_picks_are_seeded(records):
    ds = SpeechDataset(records)
    a, b = ds[2], ds[2]
    assert torch.equal(a.ref_mel, b.ref_mel)
    ds.set_epoch(1)
    refs = {ds[i % len(ds)].ref_mel.sum().item() for i in range(0, 12, 2)}
    assert len(refs) > 1  # different clips / crops get drawn
    with pytest.raises(ValueError, match="no OOD text"):
        SpeechDataset(records, ood_texts=["too short ."])


def test_collate_pads_and_sorts(records):
    ds = SpeechDataset(records)
    samples = [ds[i] for i in (0, 1, 4)]
    batch = Collater()(samples)
    assert isinstance(batch, Batch) and len(batch) == 3
    assert batch.mel_lengths.tolist() == sorted((s.mel.shape[1] for s in samples), reverse=True)
    assert batch.mels.shape == (3, 80, int(batch.mel_lengths.max()))
    shortest = batch.mel_lengths[-1]
    assert torch.all(batch.mels[-1, :, shortest:] == 0)
    assert batch.ref_mels.shape == (3, 80, 192)
    assert batch.tokens.shape == (3, int(batch.token_lengths.max())) and batch.ood_tokens is None
    assert [(len(w) // 300 + 1) // 2 * 2 for w in batch.waves] == batch.mel_lengths.tolist()
    assert batch.to("cpu").mels.data_ptr() == batch.mels.data_ptr()


def test_crop_windows_modes():
    lengths = torch.tensor([400, 300, 170])
    gen = torch.Generator().manual_seed(0)
    starts, sizes = crop_windows(lengths, max_mel_frames=400, generator=gen)
    assert sizes.tolist() == [84, 84, 84]  # upstream: min(170 / 2 - 1, 400 // 2)
    assert torch.all(starts + sizes <= lengths // 2)
    starts, sizes = crop_windows(lengths, max_mel_frames=200, to_shortest=False, generator=gen)
    assert sizes.tolist() == [100, 100, 84]
    assert torch.all(starts >= 0) and torch.all(starts + sizes <= lengths // 2)
    with pytest.raises(ValueError, match="too short"):
        crop_windows(torch.tensor([2, 100]), 400)


# --- sampler ------------------------------------------------------------------------------


LENGTHS = [int(x) for x in np.random.default_rng(0).integers(80, 800, size=103)]


def test_sampler_is_deterministic_and_covers_the_data():
    a = LengthBucketBatchSampler(LENGTHS, batch_size=8, bucket_multiplier=4, seed=5)
    b = LengthBucketBatchSampler(LENGTHS, batch_size=8, bucket_multiplier=4, seed=5)
    assert list(a) == list(b) and len(list(a)) == len(a) == 103 // 8
    flat = [i for batch in a for i in batch]
    assert len(flat) == len(set(flat)) == 12 * 8
    a.set_epoch(1)
    assert list(a) != list(b)
    keep_last = LengthBucketBatchSampler(LENGTHS, batch_size=8, drop_last=False)
    assert sorted(i for batch in keep_last for i in batch) == list(range(103))


def test_sampler_buckets_by_length():
    bucketed = LengthBucketBatchSampler(LENGTHS, batch_size=8, bucket_multiplier=4)
    plain = LengthBucketBatchSampler(LENGTHS, batch_size=8, bucketing=False)

    def mean_spread(sampler):
        return np.mean([max(LENGTHS[i] for i in b) - min(LENGTHS[i] for i in b) for b in sampler])

    assert mean_spread(bucketed) < 0.5 * mean_spread(plain)


def test_sampler_resumes_mid_epoch():
    sampler = LengthBucketBatchSampler(LENGTHS, batch_size=8, seed=1)
    sampler.set_epoch(3)
    full = list(sampler)
    it = iter(sampler)
    seen = [next(it) for _ in range(5)]
    state = sampler.state_dict()
    assert state["epoch"] == 3 and state["consumed"] == 5

    resumed = LengthBucketBatchSampler(LENGTHS, batch_size=8, seed=1)
    resumed.load_state_dict(state)
    resumed.set_epoch(3)  # the usual loop call keeps the restored position
    assert seen + list(resumed) == full
    resumed.set_epoch(4)
    assert len(list(resumed)) == len(full)

    restored = LengthBucketBatchSampler(LENGTHS, batch_size=8, seed=1)
    restored.load_state_dict(sampler.state_dict(consumed=2))  # what the loop really consumed
    assert list(restored) == full[2:]
    with pytest.raises(ValueError, match="seed"):
        LengthBucketBatchSampler(LENGTHS, batch_size=8, seed=2).load_state_dict(state)


def test_sampler_shards_for_ddp():
    shards = [list(LengthBucketBatchSampler(LENGTHS, batch_size=4, rank=r, world_size=3)) for r in range(3)]
    assert len({len(s) for s in shards}) == 1 and len(shards[0]) == (103 // 4) // 3
    flat = [i for shard in shards for batch in shard for i in batch]
    assert len(flat) == len(set(flat))
    with pytest.raises(ValueError, match="rank"):
        LengthBucketBatchSampler(LENGTHS, rank=3, world_size=3)


def test_dataloader_end_to_end(records):
    ds = SpeechDataset(records)
    sampler = LengthBucketBatchSampler(ds.mel_lengths(), batch_size=2, bucket_multiplier=2)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=Collater())
    batches = list(loader)
    assert len(batches) == 3 and all(b.mels.shape[0] == 2 for b in batches)
    assert sorted(p for b in batches for p in b.paths) == sorted(str(r.wav) for r in records)


def test_issue_formatting(tmp_path):
    assert str(Issue("silent", tmp_path / "l.txt", 7, "peak 0")) == f"{tmp_path / 'l.txt'}:7: silent: peak 0"


def test_text_longer_than_its_clips_alignment_frames_is_rejected(tmp_path):
    # the alignment gives every token (pads included) one frame: frames = the dataset's mel frames / 2
    wav = write_wav(tmp_path / "a.wav", 79 * 300 / SR)
    dataset = SpeechDataset(read_list(_list(tmp_path, [wav])))
    frames = dataset[0].mel.shape[-1] // 2
    fits, too_long = "a" * (frames - 2), "a" * (frames - 1)
    lst = tmp_path / "texts.txt"
    lst.write_text(f"a.wav|{fits}|0\na.wav|{too_long}|0\n", "utf-8")
    report = validate_records(read_list(lst))
    assert [r.phonemes for r in report.good] == [fits]
    assert [(i.reason, i.line) for i in report.issues] == [("text_too_long", 2)]
    assert f"{frames + 1} tokens" in report.issues[0].detail


def test_the_alignment_frame_count_follows_the_datasets_edge_padding_binding():
    from styletts2.audio.mel import n_mel_frames
    from styletts2.data.validate import _alignment_frames

    assert _alignment_frames(24000, 24000) == n_mel_frames(24000 + 2 * 5000, 300) // 2  # upstream's padding
    with gin.unlock_config():
        gin.bind_parameter("SpeechDataset.edge_padding", 0)
    try:
        assert _alignment_frames(24000, 24000) == n_mel_frames(24000, 300) // 2
        assert _alignment_frames(12000, 12000) == n_mel_frames(24000, 300) // 2  # resampled to 24 kHz first
    finally:
        gin.clear_config()


def test_speaker_ids_outside_a_sane_range_are_malformed(tmp_path):
    lst = tmp_path / "list.txt"
    ids = ["99999999999999999999", "-1", "2147483647"]
    lst.write_text("".join(f"{name}.wav|{PHONEMES}|{i}\n" for name, i in zip("abc", ids)), "utf-8")
    issues = []
    records = read_list(lst, issues=issues)
    assert [(i.reason, i.line) for i in issues] == [("malformed", 1), ("malformed", 2)]
    assert "speaker id 99999999999999999999 is outside" in str(issues[0])
    # the batch tensor Collater builds
    assert torch.tensor([r.speaker for r in records], dtype=torch.long).tolist() == [2147483647]


def test_out_of_range_and_truncated_clips_are_rejected(tmp_path):
    wave = 0.3 * np.random.default_rng(0).uniform(-1, 1, SR)
    sf.write(str(tmp_path / "loud.wav"), (50 * wave).astype(np.float32), SR, subtype="FLOAT")
    sf.write(str(tmp_path / "loud_ok.wav"), (1.9 / 0.3 * wave).astype(np.float32), SR, subtype="FLOAT")
    whole = write_wav(tmp_path / "whole.wav", 2.0).read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[:len(whole) // 2])
    assert sf.info(str(tmp_path / "cut.wav")).frames > 0  # soundfile reads the half without complaint
    clips = [tmp_path / name for name in ("loud.wav", "loud_ok.wav", "whole.wav", "cut.wav")]
    report = validate_records(read_list(_list(tmp_path, clips)))
    assert [r.wav.name for r in report.good] == ["loud_ok.wav", "whole.wav"]
    assert [(i.reason, i.line) for i in report.issues] == [("out_of_range", 1), ("truncated", 4)]
    headers_only = validate_records(read_list(_list(tmp_path, clips)), silence_peak=None)
    assert headers_only.counts() == {"truncated": 1}


def test_phoneme_cache_that_cannot_be_written_costs_a_warning_and_no_temporary(tmp_path, monkeypatch, caplog):
    import errno
    import os

    meta = tmp_path / "metadata.csv"
    meta.write_text("A|Hello world.|\nB|Good bye.|\n", "utf-8")

    def read_only(*args):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(os, "replace", read_only)
    with caplog.at_level("WARNING"):
        for _ in range(2):  # train and val lists of one folder: one warning
            out = phonemize_records(read_ljspeech(meta), CountingPhonemizer())
            assert [r.phonemes for r in out] == ["olleh .dlrow", "doog .eyb"]
    assert sum("not saved (Read-only file system)" in m for m in caplog.messages) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metadata.csv"]


def test_phoneme_cache_gets_the_umasks_mode(tmp_path):
    import os

    meta = tmp_path / "metadata.csv"
    meta.write_text("A|Hello world.|\n", "utf-8")
    old = os.umask(0o027)
    try:
        phonemize_records(read_ljspeech(meta), CountingPhonemizer())
    finally:
        os.umask(old)
    cache = cache_path(tmp_path, "en-us", "1.52.0", corpus_normalizer().key)
    assert cache.stat().st_mode & 0o777 == 0o640  # as an ordinary file: the group can read a shared corpus's cache


def test_corpus_texts_an_english_voice_spells_out_give_one_warning(tmp_path, caplog):
    meta = tmp_path / "metadata.csv"
    meta.write_text("A|Hello world.|\nB|Say Привет now.|\nC|Then 你好 and Москва.|\n", "utf-8")
    with caplog.at_level("WARNING", logger="styletts2.data.readers"):
        phonemize_records(read_ljspeech(meta), CountingPhonemizer(), normalizer=None)
        phonemize_records(read_ljspeech(meta), CountingPhonemizer(), normalizer=None)  # cached: said once
    [message] = [m for m in caplog.messages if "English voice" in m]
    assert message.startswith("2 text(s) have letters") and "(Cyrillic x12, CJK x2)" in message
    assert "the first: 'Say Привет now.'" in message


def test_brackets_in_corpus_text_are_dropped_as_synthesis_drops_them(tmp_path):
    import dataclasses
    import warnings

    from styletts2.text.tokenizer import Tokenizer

    class BracketKeeping(CountingPhonemizer):  # espeak-ng keeps ( ) [ ] { }
        def __call__(self, text):
            return "hiː sˈɛd ( kwˈaɪətli ) [ ænd ] { sˈoʊ } ."

    meta = tmp_path / "metadata.csv"
    meta.write_text("A|He said (quietly) [and] {so}.|\nB|Ünknown.|\n", "utf-8")
    for name in "AB":
        write_wav(tmp_path / "wavs" / f"{name}.wav", 2.0)
    records = phonemize_records(read_ljspeech(meta), BracketKeeping())
    records[1] = dataclasses.replace(records[1], phonemes="tèst")  # other unknown symbols: still rejected
    report = validate_records(records)
    assert [r.wav.name for r in report.good] == ["A.wav"]
    assert [(i.reason, i.line) for i in report.issues] == [("unknown_symbols", 2)]
    tokenizer = Tokenizer()
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        synthesized = tokenizer.encode_for_training(BracketKeeping()(""))  # synthesis drops them, with a warning
    assert tokenizer.encode_for_training(report.good[0].phonemes) == synthesized


def test_text_with_nothing_speakable_and_a_folder_named_like_a_clip_are_named_for_what_they_are(tmp_path):
    meta = tmp_path / "metadata.csv"
    meta.write_text("A|___|\nB|\U0001F600\U0001F600|\nC|Fine text.|\n", "utf-8")
    (tmp_path / "wavs" / "C.wav").mkdir(parents=True)
    issues = []
    with pytest.warns(Warning, match="cannot speak"):  # the normalizer drops the emoji
        records = phonemize_records(read_ljspeech(meta), CountingPhonemizer(), issues=issues)
    assert [(i.reason, i.line) for i in issues] == [("phonemize_failed", 1), ("phonemize_failed", 2)]
    assert all("has no phoneme" in i.detail and "empty" not in i.detail for i in issues)
    report = validate_records(records)
    folder = tmp_path / "wavs" / "C.wav"
    assert [(i.reason, i.detail) for i in report.issues] == [("missing", f"{folder}: a folder, not an audio file")]
