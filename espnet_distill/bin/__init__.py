"""Entry points: ``python -m espnet_distill.bin.<name> --help``."""
import argparse
import logging

LOG_FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """The one log format of every entry point (as ESPnet's)."""
    logging.basicConfig(level=level, format=LOG_FORMAT)


def new_parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of an entry point: its module docstring, laid out as written, is the ``--help`` text."""
    return argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_text_norm_args(parser, what: str = "text") -> None:
    """``--case`` and ``--punctuation``: the options of :func:`espnet_distill.data.text.normalize_text`."""
    from espnet_distill.data.text import CASES, PUNCTUATION

    parser.add_argument("--case", choices=CASES, default="lower", help=f"case folding of {what}")
    parser.add_argument("--punctuation", choices=PUNCTUATION, default="remove", help=f"punctuation in {what}")


def input_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean bad input (a config, data dir, audio file, checkpoint or teacher) or a
    full disk: an entry point shows their one-line message alone, without a traceback."""
    from espnet_distill.checkpoint_io import CheckpointError, DiskFullError
    from espnet_distill.config import ConfigError
    from espnet_distill.data.audio import AudioError
    from espnet_distill.data.tables import DataDirError
    from espnet_distill.teacher.teacher import TeacherError

    return ConfigError, DataDirError, AudioError, CheckpointError, TeacherError, DiskFullError
