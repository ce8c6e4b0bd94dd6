"""RESULTS.md tables: decodings found by kind (set names with underscores, int8), the int8 section."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from espnet_distill.analysis import results
from espnet_distill.bin import make_results


def experiment(asr: Path, name: str, ckpt: Path, wers: dict[str, float]) -> Path:
    """exp/asr/<name> with config.yaml and decode_<kind>_<set>/scores.json for {"<kind>_<set>": WER}."""
    d = asr / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump({"frontend_conf": {"checkpoint": str(ckpt)}}))
    for key, wer in wers.items():
        (d / f"decode_{key}").mkdir()
        (d / f"decode_{key}" / "scores.json").write_text(json.dumps({"wer": {"rate": wer}, "cer": {"rate": wer / 2}}))
    return d


def test_decode_kinds_with_underscored_sets_and_int8(tmp_path):
    d = experiment(tmp_path, "m", tmp_path / "s.pt", {"ctc_greedy_test_clean": 10.0, "ctc_greedy_int8_test_clean": 11.0,
                                                     "att_beam_dev_other": 9.0})
    assert results.decode_kinds(d, ["test_clean", "dev_other"]) == ["att_beam", "ctc_greedy", "ctc_greedy_int8"]


def test_summary_with_int8_rows_and_their_speed(tmp_path):
    asr = tmp_path / "asr"
    ckpt = tmp_path / "dt" / "student.pt"
    for seed, (fl, q) in enumerate([(40.0, 41.0), (42.0, 42.5)]):
        experiment(asr, f"dt_10min_seed{seed}", ckpt, {"ctc_greedy_test": fl, "ctc_greedy_int8_test": q})
    experiment(asr, "scratch_10min_seed0", tmp_path / "scratch.pt", {"ctc_greedy_test": 50.0})
    bench = [{"checkpoint": str(ckpt), "int8_of": None, "params": {"frontend": 1e6, "encoder": 2e6},
              "time": {"1": {"total": 0.004}}},
             {"checkpoint": str(ckpt), "int8_of": "dt", "params": {"frontend": 1e6, "encoder": 2e6},
              "time": {"1": {"total": 0.002}}}]
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    assert make_results.main(["summary", "--asr-dir", str(asr), "--benchmark", str(tmp_path / "bench.json"),
                              "--test-sets", "test", "--out", str(tmp_path / "R.md")]) == 0
    text = (tmp_path / "R.md").read_text()
    assert "| dt_10min_seed0 | ctc greedy | 3.00 | 4.0 | 40.00 | 20.00 |" in text
    assert "| dt_10min_seed0 | ctc greedy int8 | 3.00 | 2.0 | 41.00 | 20.50 |" in text  # the int8 frontend's time
    # int8 against float, mean over the two seeds; a model never decoded in int8 has no row
    assert "## int8 inference" in text
    assert "| dt_10min | 2 | 41.00 | 41.75 | +0.75 |" in text
    assert "| scratch_10min | 1 |" not in text.split("## int8 inference")[1]
    assert "One fine-tuning seed per model" not in text  # dt has two seeds
    shutil.rmtree(asr / "dt_10min_seed1")  # now every model has one seed: the table says so
    assert make_results.main(["summary", "--asr-dir", str(asr), "--benchmark", str(tmp_path / "bench.json"),
                              "--test-sets", "test", "--out", str(tmp_path / "R.md")]) == 0
    assert "One fine-tuning seed per model: the spread over seeds is not measured" in (tmp_path / "R.md").read_text()


def scored(asr: Path, name: str, ref: dict[str, str], hyp: dict[str, str]) -> None:
    """exp/asr/<name>/decode_ctc_greedy_test scored by sclite (scores.json, score_wer/result.sgml)."""
    from espnet_distill.bin import score

    d = asr / name / "decode_ctc_greedy_test"
    d.mkdir(parents=True)
    (asr / name / "config.yaml").write_text(yaml.safe_dump({"frontend_conf": {"checkpoint": "x.pt"}}))
    (d / "ref").write_text("".join(f"{u} {t}\n" for u, t in sorted(ref.items())))
    (d / "text").write_text("".join(f"{u} {t}\n" for u, t in sorted(hyp.items())))
    assert score.main(["--ref", str(d / "ref"), "--hyp", str(d / "text"), "--outdir", str(d)]) == 0


def test_claims_table_gaps_significance_and_verdicts(tmp_path):
    asr = tmp_path / "asr"
    words = "the quick brown fox jumps over the lazy dog again and again".split()
    ref = {f"u{i:02d}": " ".join(words[i % 4: i % 4 + 8]) for i in range(40)}

    def damaged(every: int, seed: int) -> dict[str, str]:  # one word wrong in every `every`-th utterance
        return {u: (t.replace("fox", "box").replace("dog", "log") if (i + seed) % every == 0 else t)
                for i, (u, t) in enumerate(sorted(ref.items()))}

    for seed in (0, 1):
        scored(asr, f"teacher_10min_seed{seed}", ref, damaged(20, seed))    # few errors
        scored(asr, f"scratch_10min_seed{seed}", ref, damaged(1, seed))     # an error in every utterance
        scored(asr, f"dt_fbank_10min_seed{seed}", ref, damaged(1, seed + 1))  # as bad as scratch
    table = results.claims_table(asr, [], "10min", ["test"])
    rows = {line.split("|")[2].strip(): line for line in table.splitlines() if line.startswith("| C")}
    teacher = next(v for k, v in rows.items() if "`teacher` vs `scratch`" in k)
    assert "better in 2/2, worse in 0/2" in teacher
    assert teacher.rstrip(" |").endswith("reproduced")
    distilled = next(v for k, v in rows.items() if "`dt_fbank` vs `scratch`" in k)
    assert "better in 0/2, worse in 0/2" in distilled
    assert "not resolved at this scale" in distilled
    assert "| +0.00 |" in distilled
    assert any("`dt_cnn` vs `dt_cnn_alpha0`" in k and "not run" in v for k, v in rows.items())


def test_verdicts():
    assert results.verdict("better", 2, 0, 3) == "reproduced"
    assert results.verdict("better", 2, 1, 3) == "not resolved at this scale"
    assert results.verdict("better", 0, 2, 3) == "contradicted"
    assert results.verdict("no worse", 0, 1, 3) == "reproduced"
    assert results.verdict("no worse", 0, 2, 3) == "contradicted"
    assert results.verdict("better", 0, 0, 0) == "not measured"


def test_claims_only_reports_the_claims_asked_for(tmp_path):
    """make_results claims --only C5: a run that measured C5 alone gets its rows, no "not run" rows."""
    asr = tmp_path / "asr"
    ref = {f"u{i:02d}": "the quick brown fox jumps" for i in range(10)}
    for seed in (0, 1):
        scored(asr, f"pruned_dt_10min_seed{seed}", ref, ref)
        scored(asr, f"dt_cnn_10min_seed{seed}", ref, {u: "the quick brown box jumps" for u in ref})
    (tmp_path / "bench.json").write_text("[]")
    args = ["claims", "--asr-dir", str(asr), "--benchmark", str(tmp_path / "bench.json"), "--finetune-set", "10min",
            "--test-sets", "test", "--out", str(tmp_path / "CLAIMS.md")]
    assert make_results.main(args + ["--only", "C5"]) == 0
    rows = [line for line in (tmp_path / "CLAIMS.md").read_text().splitlines() if line.startswith("| C")]
    assert len(rows) == 1
    assert "`pruned_dt` vs `dt_cnn`" in rows[0]
    assert "| 0.00 ± 0.00 | 20.00 ± 0.00 | -20.00 |" in rows[0]


def test_exported_models_table(tmp_path):
    """decode_onnx_{fp32,int8}_<set>: WER/CER, the hypotheses equal to PyTorch's greedy ones, the
    real-time factor over the sets, size and peak memory; nothing exported, no section."""
    asr = tmp_path / "asr"
    d = experiment(asr, "dt_10min", tmp_path / "dt.pt", {"ctc_greedy_test": 40.0, "onnx_fp32_test": 40.0,
                                                           "onnx_int8_test": 42.0})
    (d / "decode_ctc_greedy_test/text").write_text("u1 a b\nu2 c\nu3 d\nu4 e\n")
    (d / "decode_onnx_fp32_test/text").write_text("u1 a b\nu2 c\nu3 d\nu4 e\n")
    (d / "decode_onnx_int8_test/text").write_text("u1 a b\nu2 x\nu3 d\nu4 e\n")
    for graph, seconds, mb in (("fp32", 2.0, 300.5), ("int8", 1.0, 120.0)):
        (d / f"decode_onnx_{graph}_test/stats.json").write_text(json.dumps(
            {"runtime": "onnxruntime", "audio_seconds": 100.0, "decode_seconds": seconds, "model_bytes": 5e6,
             "peak_rss_mb": mb}))
    table = results.onnx_table(asr, ["test"])
    assert "| dt_10min | fp32 | onnxruntime | 40.00 | 20.00 | 100.0 | 0.0200 | 5.00 | 300 |" in table
    assert "| dt_10min | int8 | onnxruntime | 42.00 | 21.00 | 75.0 | 0.0100 | 5.00 | 120 |" in table
    assert "## Exported models" in results.results_document(asr, "", ["test"])
    shutil.rmtree(d / "decode_onnx_fp32_test")
    shutil.rmtree(d / "decode_onnx_int8_test")
    assert results.onnx_table(asr, ["test"]) == ""
    assert "## Exported models" not in results.results_document(asr, "", ["test"])


def test_superb_table_puts_each_probe_beside_its_fine_tuned_model(tmp_path):
    asr = tmp_path / "asr"
    for seed, (ft, sup) in enumerate([(40.0, 60.0), (42.0, 62.0)]):
        experiment(asr, f"dt_10min_seed{seed}", tmp_path / "dt.pt", {"ctc_greedy_test": ft})
        experiment(asr, f"dt_10min_superb_seed{seed}", tmp_path / "dt.pt", {"ctc_greedy_test": sup})
    experiment(asr, "scratch_10min_seed0", tmp_path / "scratch.pt", {"ctc_greedy_test": 50.0})  # no probe: no row
    (tmp_path / "bench.json").write_text("[]")
    assert make_results.main(["summary", "--asr-dir", str(asr), "--benchmark", str(tmp_path / "bench.json"),
                              "--test-sets", "test", "--out", str(tmp_path / "R.md")]) == 0
    section = (tmp_path / "R.md").read_text().split("## SUPERB ASR")[1]
    assert "| model | seeds | test WER fine-tuned | test WER SUPERB |" in section
    assert "| dt_10min | 2 | 41.00 ± 1.41 | 61.00 ± 1.41 |" in section
    assert "scratch_10min" not in section.split("\n\n##")[0]
    shutil.rmtree(asr / "dt_10min_superb_seed0")
    shutil.rmtree(asr / "dt_10min_superb_seed1")
    assert results.superb_table(asr, ["test"]) == ""  # no probe: no section


def test_lm_section_puts_each_lm_decoding_beside_the_same_model_without_it(tmp_path):
    asr, lm = tmp_path / "asr", tmp_path / "lm"
    for seed, (greedy, fused) in enumerate([(80.0, 60.0), (82.0, 61.0)]):  # CTC-only: beside CTC greedy
        experiment(asr, f"dt_10min_seed{seed}", tmp_path / "dt.pt", {"ctc_greedy_test": greedy,
                                                                     "ctc_beam_lm_test": fused})
    experiment(asr, "att_10min_seed0", tmp_path / "att.pt", {"ctc_greedy_test": 70.0, "att_beam_test": 50.0,
                                                             "att_beam_lm_test": 45.5})  # beside attention beam
    experiment(asr, "scratch_10min_seed0", tmp_path / "scratch.pt", {"ctc_greedy_test": 90.0})  # no LM: no row
    (lm / "ppl_dev").mkdir(parents=True)
    (lm / "ppl_dev/ppl").write_text("2.4733\n")
    (lm / "config.yaml").write_text(yaml.safe_dump({"lm": "seq_rnn", "lm_conf": {"unit": 256, "nlayers": 1},
                                                    "token_type": "char"}))
    (lm / "data").mkdir()
    (lm / "data/train.text").write_text("lm1 a b\nlm2 c\n")
    (tmp_path / "bench.json").write_text("[]")
    assert make_results.main(["summary", "--asr-dir", str(asr), "--benchmark", str(tmp_path / "bench.json"),
                              "--test-sets", "test", "--lm-dir", str(lm), "--out", str(tmp_path / "R.md")]) == 0
    text = (tmp_path / "R.md").read_text()
    assert "| dt_10min_seed0 | ctc beam + LM | - | - | 60.00 | 30.00 |" in text  # the summary's row
    section = text.split("## LM decoding")[1]
    assert "ESPnet's `seq_rnn` (nlayers 1, unit 256), char tokens, trained on 2 sentences; perplexity per " \
           "token: dev 2.47." in section
    assert "| dt_10min | 2 | ctc greedy | ctc beam + LM | 81.00 | 60.50 | -20.50 |" in section
    assert "| att_10min | 1 | att beam | att beam + LM | 50.00 | 45.50 | -4.50 |" in section
    assert "scratch_10min" not in section
    for d in asr.glob("*/decode_*_lm_test"):
        shutil.rmtree(d)
    assert "## LM decoding" not in results.results_document(asr, "", ["test"], lm_dir=lm)
