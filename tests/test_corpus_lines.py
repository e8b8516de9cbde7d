"""Bad corpus lines are reported with file:line and skipped; a damaged phoneme cache is rebuilt
(issue 11, item 2)."""
import json
import logging

import pytest
from test_data import PHONEMES, CountingPhonemizer, write_wav

from styletts2.data.readers import (CorpusFormatError, cache_path, corpus_normalizer, phonemize_records, read_list,
                                    read_ljspeech, read_ood_texts)
from styletts2.data.validate import scan_corpus


def test_undecodable_lines_are_reported_and_skipped(tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_bytes(f"a.wav|{PHONEMES}|0\n".encode() + b"b.wav|caf\xe9|0\n" + f"c.wav|{PHONEMES}|0\n".encode())
    issues = []
    records = read_list(lst, issues=issues)
    assert [r.wav.name for r in records] == ["a.wav", "c.wav"] and [r.line for r in records] == [1, 3]
    assert [(i.reason, i.line) for i in issues] == [("undecodable", 2)]
    assert "0xe9" in issues[0].detail
    with pytest.raises(CorpusFormatError, match=r"list.txt:2: undecodable"):
        read_list(lst)

    meta = tmp_path / "metadata.csv"
    meta.write_bytes(b"\xef\xbb\xbfA|Hello.|\nB|Caf\xe9.|\n")  # a BOM, then Latin-1
    issues = []
    assert [r.text for r in read_ljspeech(meta, issues=issues)] == ["Hello."]
    assert [(i.reason, i.line) for i in issues] == [("undecodable", 2)]


def test_ood_texts_skip_undecodable_lines(tmp_path, caplog):
    ood = tmp_path / "OOD_texts.txt"
    ood.write_bytes(b"one\n\xff\xfe two\nthree\n")
    with caplog.at_level(logging.WARNING):
        assert read_ood_texts(ood) == ["one", "three"]
    assert "OOD_texts.txt:2: undecodable" in caplog.text


@pytest.mark.parametrize("entry", ["../outside.wav", "wavs/../../outside.wav", "/abs/outside.wav"])
def test_paths_leaving_the_data_root_are_rejected(tmp_path, entry):
    root = tmp_path / "root"
    lst = tmp_path / "list.txt"
    lst.write_text(f"wavs/in.wav|{PHONEMES}|0\n{entry}|{PHONEMES}|0\nwavs/../wavs/in.wav|{PHONEMES}|0\n", "utf-8")
    issues = []
    records = read_list(lst, root=root, issues=issues)
    assert [r.line for r in records] == [1, 3]
    assert [(i.reason, i.line) for i in issues] == [("outside_root", 2)]
    assert "allow_outside_root" in issues[0].detail
    assert len(read_list(lst, root=root, issues=[], allow_outside_root=True)) == 3


def test_scan_report_file_names_every_entry(tmp_path):
    wavs = tmp_path / "wavs"
    write_wav(wavs / "good.wav", 1.5)
    lines = [f"wavs/good.wav|{PHONEMES}|0"] + [f"wavs/missing{i}.wav|{PHONEMES}|0" for i in range(5)]
    lst = tmp_path / "list.txt"
    lst.write_bytes(("\n".join(lines) + "\n").encode() + b"wavs/x.wav|\xff|0\n../up.wav|" + PHONEMES.encode() + b"|0\n")
    report = scan_corpus(lst, phonemizer=CountingPhonemizer())
    assert report.counts() == {"missing": 5, "undecodable": 1, "outside_root": 1}
    written = report.write(tmp_path / "run" / "corpus_issues.tsv").read_text("utf-8").splitlines()
    assert len(written) == 7  # all of them, where the console shows three per reason
    assert {row.split("\t")[0] for row in written} == {f"{lst}:{n}" for n in range(2, 9)}
    assert {row.split("\t")[1] for row in written} == {"missing", "undecodable", "outside_root"}


@pytest.mark.parametrize("damage", [b"{\"phonemes\": {\"Hello.\": ", b"\xff\xfe", b"[1, 2]", b"{\"phonemes\": 3}"])
def test_damaged_phoneme_cache_is_named_and_rebuilt(tmp_path, caplog, damage):
    meta = tmp_path / "metadata.csv"
    meta.write_text("A|Hello.|\n", "utf-8")
    cache = cache_path(tmp_path, "en-us", "1.52.0", corpus_normalizer().key)
    cache.write_bytes(damage)
    phonemizer = CountingPhonemizer()
    with caplog.at_level(logging.WARNING):
        records = phonemize_records(read_ljspeech(meta), phonemizer)
    assert records[0].phonemes == ".olleh" and phonemizer.calls == ["Hello."]
    assert str(cache) in caplog.text and "rebuilding" in caplog.text
    assert json.loads(cache.read_text("utf-8"))["phonemes"] == {"Hello.": ".olleh"}
