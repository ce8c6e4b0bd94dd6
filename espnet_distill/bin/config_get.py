"""Print one value of a config (for shell recipes): config_get [--teacher] FILE KEY[.SUBKEY] [DEFAULT].

Lists and mappings are printed as JSON; a missing key prints DEFAULT, or fails without one.
``--teacher``: FILE is a teacher YAML, read through its typed config (every key checked, every
default filled in from the dataclasses: ``backend``, ``iterations``, ``kmeans.n_clusters``, ...),
so that a recipe never repeats a default of the Python side.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict

from espnet_distill.config import ConfigError, read_yaml


def get(conf: dict, dotted: str):
    cur = conf
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(dotted)
        cur = cur[part]
    return cur


def resolved_teacher(path: str) -> dict:
    """A teacher YAML with every default filled in (backend pretrain, local or s3prl)."""
    from espnet_distill.teacher.teacher import DEFAULT_BACKEND, teacher_config
    from espnet_distill.train.pretrain import PretrainConfig

    conf = read_yaml(path)
    if conf.get("backend", DEFAULT_BACKEND) == "pretrain":
        return PretrainConfig.from_dict(conf, path).to_dict()
    return asdict(teacher_config(conf))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    teacher = bool(argv) and argv[0] == "--teacher"
    argv = argv[1:] if teacher else argv
    if len(argv) not in (2, 3) or argv[0] in ("-h", "--help"):
        sys.stderr.write(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        if teacher:
            conf = resolved_teacher(argv[0])
        else:
            conf = read_yaml(argv[0])
    except (ConfigError, ValueError) as e:  # TeacherError is a ValueError
        sys.stderr.write(f"{argv[0]}: {e}\n")
        return 1
    try:
        v = get(conf, argv[1])
    except KeyError:
        if len(argv) == 3:
            print(argv[2])
            return 0
        sys.stderr.write(f"{argv[0]}: no key '{argv[1]}'\n")
        return 1
    print(json.dumps(v) if isinstance(v, (dict, list)) else ("" if v is None else v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
