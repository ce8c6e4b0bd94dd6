"""Print one value of a YAML config (for shell recipes): config_get FILE KEY[.SUBKEY] [DEFAULT].

Lists and mappings are printed as JSON; a missing key prints DEFAULT, or fails without one.
"""
from __future__ import annotations

import json
import sys

import yaml


def get(conf: dict, dotted: str):
    cur = conf
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise KeyError(dotted)
        cur = cur[part]
    return cur


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3) or argv[0] in ("-h", "--help"):
        sys.stderr.write(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    with open(argv[0]) as f:
        conf = yaml.safe_load(f) or {}
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
