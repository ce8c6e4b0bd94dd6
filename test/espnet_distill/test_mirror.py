"""test/ mirrors the package: every module has test/espnet_distill/<room>/test_<module>.py (or
test_<room>_<module>.py where the name is taken), or is
named below with the test file that exercises it (entry points are mostly run through their room's
tests or the recipes; a few library modules are covered by the test of the module that uses them)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "espnet_distill"

COVERED_BY = {  # module (package-relative path) -> the test file that runs it
    "analysis/plots.py": "test/espnet_distill/analysis/test_benchmark.py",  # curves; heatmaps in test_cka
    "analysis/onnx_bench.py": "test/espnet_distill/analysis/test_benchmark.py",  # the deployment benchmark
    "analysis/results.py": "test/espnet_distill/bin/test_make_results.py",
    "asr/model_card.py": "test/espnet_distill/asr/test_asr_train_decode.py",  # packed by bin/pack_model
    "asr/prep.py": "test/espnet_distill/asr/test_asr_train_decode.py",  # tokens and shapes before training
    "asr/significance.py": "test/espnet_distill/asr/test_score.py",
    "asr/task.py": "test/espnet_distill/asr/test_asr_train_decode.py",
    "asr/transcribe.py": "test/espnet_distill/asr/test_asr_train_decode.py",
    "checkpoint_io.py": "test/espnet_distill/teacher/test_teacher.py",  # weights-only loading of every format
    "corpora/lexicon.py": "test/espnet_distill/corpora/test_synth_en.py",
    "data/kaldi_compat.py": "test/utils/test_kaldi_signatures.py",
    "data/text.py": "test/espnet_distill/asr/test_score.py",
    "student/export_check.py": "test/espnet_distill/student/test_export.py",
    "student/heads.py": "test/espnet_distill/student/test_model.py",
    "bin/analyze.py": "test/espnet_distill/analysis/test_cka.py",
    "bin/asr_decode.py": "test/espnet_distill/asr/test_asr_train_decode.py",
    "bin/asr_inference.py": "test/espnet_distill/asr/test_asr_train_decode.py",
    "bin/asr_prep.py": "test/espnet_distill/asr/test_asr_train_decode.py",
    "bin/asr_train.py": "test/espnet_distill/asr/test_asr_train_decode.py",
    "bin/benchmark.py": "test/espnet_distill/analysis/test_benchmark.py",
    "bin/data_dir.py": "test/utils/test_kaldi_signatures.py",
    "bin/dump_data_dir.py": "test/espnet_distill/data/test_dump.py",
    "bin/experiment.py": "test/espnet_distill/asr/test_experiment.py",
    "bin/export.py": "test/espnet_distill/student/test_export.py",
    "bin/kaldi_data_dir.py": "test/utils/test_kaldi_signatures.py",
    "bin/launch.py": "test/espnet_distill/test_jobs.py",
    "bin/pack_model.py": "test/espnet_distill/asr/test_asr_train_decode.py",
    "bin/prepare_fsdd.py": "test/egs2/test_fsdd_stage1.py",
    "bin/prepare_librispeech.py": "test/espnet_distill/corpora/test_librispeech.py",
    "bin/scale_rehearsal.py": "test/espnet_distill/analysis/test_rehearsal.py",
    "bin/score.py": "test/espnet_distill/asr/test_score.py",
    "bin/stage.py": "test/egs2/test_synth_en_stage1.py",  # through distill.sh; the logic in test_stages.py
    "bin/subset_data_dir.py": "test/utils/test_kaldi_signatures.py",
    "bin/synth_corpus.py": "test/egs2/test_synth_en_stage1.py",
    "bin/teacher_info.py": "test/espnet_distill/teacher/test_teacher.py",
    "bin/teacher_pretrain.py": "test/espnet_distill/train/test_pretrain.py",
    "bin/transcribe.py": "test/espnet_distill/asr/test_asr_train_decode.py",
}


def mirror(module: Path) -> Path:
    """test_<module>.py in the room's test folder, or test_<room>_<module>.py where two rooms have a
    module of that name (pytest needs unique test file names: asr/ and student/ both have frontend.py)."""
    rel = module.relative_to(PACKAGE)
    folder = ROOT / "test/espnet_distill" / rel.parent
    plain, prefixed = folder / f"test_{rel.name}", folder / f"test_{rel.parent.name}_{rel.name}"
    return prefixed if prefixed.is_file() else plain


def test_test_file_names_are_unique():
    names = [p.name for p in (ROOT / "test").rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_every_module_has_its_test_file_or_names_the_one_that_runs_it():
    modules = [p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "__init__.py"]
    untested = [str(p.relative_to(PACKAGE)) for p in modules
                if not mirror(p).is_file() and str(p.relative_to(PACKAGE)) not in COVERED_BY]
    assert not untested, f"modules without a test file: {untested}"
    stale = {m: t for m, t in COVERED_BY.items() if not (ROOT / t).is_file() or not (PACKAGE / m).is_file()
             or mirror(PACKAGE / m).is_file()}
    assert not stale, f"COVERED_BY entries to update: {stale}"
