"""python -m espnet_distill.bin.scale_rehearsal: the LibriSpeech-960-shaped rehearsal of
espnet_distill.analysis.rehearsal (its docstring, shown by --help, says what is measured)."""
from __future__ import annotations

import sys
from pathlib import Path

from espnet_distill.analysis import rehearsal
from espnet_distill.bin import new_parser, setup_logging


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    p = new_parser("scale_rehearsal", rehearsal.__doc__)
    p.add_argument("--workdir", default="exp/scale_rehearsal", help="where the data dir, models and figures go")
    p.add_argument("--utts", type=int, default=281_241, help="utterances in the data dir (LibriSpeech 960 h: 281,241)")
    p.add_argument("--recordings", type=int, default=8, help="40 s recordings the segments point into")
    p.add_argument("--recordings-from", default=str(Path(__file__).resolve().parents[2] / "test/data/fsdd/recordings"),
                   help="folder of wavs to build the recordings from (default: the FSDD recordings in test/data)")
    p.add_argument("--frontend", choices=["fbank", "cnn"], default="fbank", help="the tiny student's front-end")
    p.add_argument("--steps", type=int, default=40, help="distillation updates to run")
    p.add_argument("--batch-seconds", type=float, default=60.0, help="padded audio seconds per update")
    p.add_argument("--batch-size", type=int, default=12, help="utterances per update at most")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    p.add_argument("--valid-utts", type=int, default=50, help="utterances in the validation dir")
    p.add_argument("--loader-utts", type=int, default=10_000, help="utterances of the loader-only pass (0: none)")
    p.add_argument("--malloc-trim-threshold", type=int, default=1 << 20,
                   help="MALLOC_TRIM_THRESHOLD_ for the trainer (bytes; 0: glibc's default)")
    a = p.parse_args(argv)

    result = rehearsal.run_rehearsal(a.workdir, a.utts, a.recordings, a.recordings_from, a.frontend, a.steps,
                                     a.batch_seconds,
                                     a.batch_size, a.workers, a.valid_utts, a.loader_utts, a.malloc_trim_threshold)
    for k, v in result.items():
        print(f"{k:32s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
