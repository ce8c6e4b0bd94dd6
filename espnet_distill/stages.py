"""The bookkeeping of the staged recipe (egs2/TEMPLATE/distill1/distill.sh): what each stage reads,
the key of a finished stage, and what a rerun does with its earlier results.

A stage's key lists the options it reads (:data:`STAGES`): their values, the content of the files
they name (configs, the grammar, the teacher YAML stage 2 wrote), the data dirs they read
(:func:`espnet_distill.data.fingerprint.data_key`: tables and audio files) and the finished markers
of the stages whose outputs it reads. A finished stage leaves ``EXPDIR/<name>/.done``: its key, then
when it finished. :func:`begin` skips a stage whose marker holds the same key (unless ``force``),
moves a finished stage whose key changed to ``EXPDIR/<name>.<time>`` (nothing finished is
overwritten), resumes an unfinished one, and writes ``reproduce.sh``; :func:`end` writes the marker.

The recipe passes its options in the environment (distill.sh exports them); a declared option that
is not there is an error, so that this list and the recipe cannot drift apart unnoticed.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from espnet_distill.asr.experiment import PROTOCOL_SUFFIX
from espnet_distill.data.fingerprint import data_key

logger = logging.getLogger(__name__)


def option(env: Mapping[str, str], name: str) -> str:
    """The recipe option ``name`` from ``env``; a clear KeyError when the recipe did not pass it."""
    if name not in env:
        raise KeyError(f"option {name} is not in the environment (the recipe exports it)")
    return env[name]


def words(env: Mapping[str, str], name: str) -> list[str]:
    return option(env, name).split()


def asr_config_for(env: Mapping[str, str], finetune_set: str) -> str:
    """The ESPnet config for fine-tuning on ``finetune_set``: its ``asr_set_configs`` entry
    (``SET=CONFIG ...``), else ``asr_config``."""
    per_set = dict(pair.split("=", 1) for pair in words(env, "asr_set_configs") if "=" in pair)
    return per_set.get(finetune_set, option(env, "asr_config"))


def asr_protocols(env: Mapping[str, str]) -> list[str]:
    """The ASR protocols of ``asr_protocols`` (:data:`~espnet_distill.asr.experiment.PROTOCOL_SUFFIX`),
    each once; a KeyError names an unknown one."""
    names = list(dict.fromkeys(words(env, "asr_protocols")))
    unknown = [n for n in names if n not in PROTOCOL_SUFFIX]
    if unknown or not names:
        raise KeyError(f"asr_protocols {option(env, 'asr_protocols')!r}: each must be one of "
                       f"{', '.join(PROTOCOL_SUFFIX)} (at least one)")
    return names


# The ESPnet config each protocol trains a fine-tuning set with: the set's fine-tuning config, or
# superb_config
PROTOCOL_CONFIG: dict[str, Callable[[Mapping[str, str], str], str]] = {
    "finetune": asr_config_for,
    "superb": lambda env, finetune_set: option(env, "superb_config"),
}


def protocol_config(env: Mapping[str, str], protocol: str, finetune_set: str) -> str:
    """The ESPnet config that trains on ``finetune_set`` under ``protocol`` (:data:`PROTOCOL_CONFIG`)."""
    return PROTOCOL_CONFIG[protocol](env, finetune_set)


def asr_runs(env: Mapping[str, str], finetune_set: str) -> list[tuple[str, str, str]]:
    """(protocol, name suffix, config) of each protocol that trains on ``finetune_set``: every one of
    ``asr_protocols``, SUPERB's only on the sets of ``superb_sets`` when it names any (SUPERB's
    setting is one set, train-clean-100)."""
    superb_sets = words(env, "superb_sets")
    return [(p, PROTOCOL_SUFFIX[p], protocol_config(env, p, finetune_set)) for p in asr_protocols(env)
            if not (p == "superb" and superb_sets and finetune_set not in superb_sets)]


def asr_configs(env: Mapping[str, str]) -> list[str]:
    """The ESPnet configs of every protocol on every ``finetune_sets`` entry, each once."""
    return list(dict.fromkeys(config for s in words(env, "finetune_sets") for _, _, config in asr_runs(env, s)))


@dataclass(frozen=True)
class Stage:
    """What a stage reads: option ``values``; ``files`` (options naming files, or functions of the
    options giving them) whose content counts; ``data`` (options naming data sets); ``after`` (the
    stages whose outputs it reads)."""

    name: str
    values: tuple[str, ...] = ()
    files: tuple[str | Callable[[Mapping[str, str]], list[str]], ...] = ()
    data: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    teacher_yaml: bool = False  # the teacher stage 2 wrote
    steps: tuple[str, ...] = ()  # the steps (:data:`STEPS`) it runs, whose keys count when they run


def lm_text_files(env: Mapping[str, str]) -> list[str]:
    """The files the LM of ``use_lm`` trains on when ``lm_train_text`` names any (a data dir: its
    text; :func:`~espnet_distill.asr.lm.lm_text_source`). The default, the fine-tuning sets'
    transcripts, is in the LM step's data key."""
    from espnet_distill.asr.lm import lm_text_source

    return [str(lm_text_source(source)[0]) for source in words(env, "lm_train_text")]


def runs_lm(env: Mapping[str, str]) -> bool:
    return option(env, "use_lm") == "true"


def token_files(env: Mapping[str, str]) -> list[str]:
    """The token list stage 5 wrote (and the BPE model), which the LM shares with the ASR models."""
    d = Path(option(env, "dumpdir")) / "token_list" / option(env, "token_type")
    return [str(d / "tokens.txt")] + ([str(d / "bpe.model")] if option(env, "token_type") == "bpe" else [])


# Steps of a stage with a finished marker of their own (EXPDIR/<name>/.done), keyed as stages are:
# stage 6 trains the LM of --use_lm once for its inputs, not at each rerun of stage 6 (on a corpus's
# LM text that takes hours). Each: (the stage that runs it, what it reads, whether it runs).
STEPS: dict[str, tuple[int, Stage, Callable[[Mapping[str, str]], bool]]] = {
    "lm": (6, Stage("lm", values=("lm_args", "lm_train_text", "token_type", "nbpe", "text_norm_opts",
                                  "finetune_sets", "valid_set"),
                    files=("lm_config", lm_text_files, token_files),
                    data=("finetune_sets", "valid_set")), runs_lm),
}



STAGES = {
    1: Stage("data", values=("local_data_opts",)),
    2: Stage("teacher", values=("train_set", "valid_set"), files=("teacher_config",), data=("train_set", "valid_set")),
    3: Stage("distill", values=("distill_configs", "train_set", "valid_set", "distill_args"),
             files=("distill_configs",),
             data=("train_set", "valid_set"), after=("teacher",), teacher_yaml=True),
    4: Stage("fbank", values=("fbank_configs", "train_set", "valid_set", "distill_args"), files=("fbank_configs",),
             data=("train_set", "valid_set"), after=("teacher",), teacher_yaml=True),
    5: Stage("asr", values=("finetune_sets", "valid_set", "asr_protocols", "superb_sets", "token_type", "nbpe",
                            "asr_teacher", "asr_args", "asr_seeds", "speed_perturb_factors", "text_norm_opts",
                            "min_wav_duration", "max_wav_duration"),
             files=(asr_configs, "asr_scratch_config", "distill_configs", "fbank_configs"),
             data=("finetune_sets", "valid_set"), after=("teacher", "distill", "fbank"), teacher_yaml=True),
    6: Stage("score", values=("int8_inference", "export_onnx", "test_sets", "inference_asr_model", "inference_args",
                              "inference_batch_size", "use_lm", "lm_weight", "beam_size", "ngram_file",
                              "ngram_weight"),
             files=("inference_config", "grammar", "ngram_file"), data=("test_sets",), after=("asr",), steps=("lm",)),
}


def file_hash(path: str | os.PathLike) -> str:
    """16 hex digits of a file's content (read in blocks: an LM text or an ARPA file may be GBs);
    ``missing`` for a file that is not there."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    except FileNotFoundError:
        return "missing"
    return h.hexdigest()[:16]


def stage_key(num: int | str, env: Mapping[str, str]) -> str:
    """The key of stage ``num`` or step ``num`` (:data:`STEPS`), one line: ``name=value`` for each option it
    reads, ``file:PATH=hash`` per file, ``data:SET=key`` per data set, ``after:STAGE=hash`` of each earlier
    marker and ``step:NAME=(key)`` of each step that runs."""
    stage = stage_of(num)
    missing = [n for n in (*stage.values, *(f for f in stage.files if isinstance(f, str)), *stage.data)
               if n not in env]
    if missing:
        raise KeyError(f"stage {num} ({stage.name}) reads {missing}, which the recipe did not pass (export them)")
    parts = [f"{n}={shlex.quote(env[n])}" for n in stage.values]
    files = [p for f in stage.files for p in (f(env) if callable(f) else words(env, f))]
    if stage.teacher_yaml:
        files.append(str(Path(env["expdir"]) / "teacher" / "teacher.yaml"))
    parts += [f"file:{p}={file_hash(p)}" for p in dict.fromkeys(files)]
    datadir = Path(env["datadir"])
    sets = list(dict.fromkeys(s for n in stage.data for s in words(env, n)))
    parts += [f"data:{s}={data_key([datadir / s])}" for s in sets]
    parts += [f"after:{a}={file_hash(Path(env['expdir']) / a / '.done')}" for a in stage.after]
    parts += [f"step:{s}=({stage_key(s, env)})" for s in stage.steps if STEPS[s][2](env)]
    return " ".join(parts)


def in_range(num: int | str, env: Mapping[str, str]) -> bool:
    """Whether stage ``num`` (or the stage of step ``num``) is in the recipe's range."""
    num = STEPS[num][0] if isinstance(num, str) else num
    return int(env["stage"]) <= num <= int(env["stop_stage"])


def stage_of(num: int | str) -> Stage:
    return STEPS[num][1] if isinstance(num, str) else STAGES[num]


def label(num: int | str) -> str:
    """How the log names stage ``num`` or step ``num``: ``Stage 6 (score)``, ``Step lm of stage 6``."""
    return f"Step {num} of stage {STEPS[num][0]}" if isinstance(num, str) else f"Stage {num} ({STAGES[num].name})"


def begin(num: int | str, env: Mapping[str, str]) -> bool:
    """Whether stage (or step) ``num`` runs (see the module's docstring); prepares ``EXPDIR/<name>`` when it
    does. A step writes no reproduce.sh: its stage's reruns it."""
    if not in_range(num, env):
        return False
    name, key = stage_of(num).name, stage_key(num, env)
    exp = Path(env["expdir"]) / name
    marker, force = exp / ".done", env.get("force") == "true"
    if marker.is_file():
        if not force and marker.read_text().split("\n", 1)[0] == key:
            logger.info("%s: already done (%s); --force true or remove the marker to rerun", label(num), marker)
            return False
        old = exp.with_name(f"{name}.{time.strftime('%Y%m%d-%H%M%S')}")
        n = 1
        while old.exists():  # two reruns within a second
            old, n = exp.with_name(f"{name}.{time.strftime('%Y%m%d-%H%M%S')}.{n}"), n + 1
        why = "--force true" if force else "options changed since the last run"
        logger.info("%s: %s; moving its results to %s and rerunning", label(num), why, old)
        exp.rename(old)
        results = Path(env.get("results_md", "RESULTS.md"))
        if name == "score" and results.is_file():  # the summary stage 6 will rewrite
            shutil.copy2(results, old / results.name)
            logger.info("%s: the earlier %s is kept as %s", label(num), results, old / results.name)
    elif exp.is_dir():
        logger.info("%s: unfinished earlier run found; training jobs resume from their checkpoints", label(num))
    marker.unlink(missing_ok=True)
    exp.mkdir(parents=True, exist_ok=True)
    (exp / ".key").write_text(key + "\n")
    if isinstance(num, int):
        rerun = (f"cd {shlex.quote(os.getcwd())} && train_threads={env.get('train_threads', '')} "
                 f"{env.get('run_args', '').strip()} --stage {num} --stop_stage {num} --force true")
        (exp / "reproduce.sh").write_text(f"#!/usr/bin/env bash\n# Reruns stage {num} ({name}) exactly as it ran on "
                                          f"{time.strftime('%c')}.\n{rerun}\n")
        (exp / "reproduce.sh").chmod(0o755)
    logger.info("%s: start", label(num))
    return True


def end(num: int | str, env: Mapping[str, str]) -> None:
    """The finished marker of stage (or step) ``num``: the key :func:`begin` computed, then when it finished
    (a stage that reads this one's outputs keys on the whole marker, so it reruns whenever this one reran)."""
    exp = Path(env["expdir"]) / stage_of(num).name
    key = (exp / ".key").read_text().strip()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S") + f".{time.time_ns() % 10**9:09d}"
    (exp / ".done").write_text(f"{key}\n# finished {stamp}\n")
    (exp / ".key").unlink()
    logger.info("%s: done", label(num))
