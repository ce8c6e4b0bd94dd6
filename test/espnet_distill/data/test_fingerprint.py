"""The data key: tables and the audio files behind them (path, size, mtime)."""
from __future__ import annotations

import os

from helpers import make_data_dir, write_wav

from espnet_distill.data.fingerprint import audio_files, data_key


def test_the_key_sees_rewritten_audio_with_the_same_tables(tmp_path):
    d = make_data_dir(tmp_path, {"s1-a": ("s1", "x"), "s1-b": ("s1", "y")})
    key = data_key([d])
    assert data_key([d]) == key  # nothing changed
    wav = tmp_path / "wav/s1-a.wav"
    st = wav.stat()
    write_wav(wav, 0.3, freq=900)  # same length, other content
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert data_key([d]) != key


def test_the_key_sees_a_pipes_input_and_a_missing_file(tmp_path):
    src = write_wav(tmp_path / "src.wav", 0.5)
    d = tmp_path / "d"
    d.mkdir()
    (d / "wav.scp").write_text(f"u1 sox {src} -r 8000 -t wav - |\n")
    (d / "utt2spk").write_text("u1 s\n")
    assert audio_files(f"sox {src} -r 8000 -t wav - |") == [str(src)]
    key = data_key([d])
    write_wav(src, 0.7)
    changed = data_key([d])
    assert changed != key
    src.unlink()
    assert data_key([d]) not in (key, changed)


def test_the_key_covers_the_tables_named(tmp_path):
    d = make_data_dir(tmp_path, {"s1-a": ("s1", "x")})
    key, audio_only = data_key([d]), data_key([d], ["wav.scp", "utt2spk"])
    (d / "text").write_text("s1-a other words\n")
    assert data_key([d]) != key
    assert data_key([d], ["wav.scp", "utt2spk"]) == audio_only


def test_ark_entries_are_known_by_their_archive():
    assert audio_files("/no/such/feats.ark:123") == ["/no/such/feats.ark"]
