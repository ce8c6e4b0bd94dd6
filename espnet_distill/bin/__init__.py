"""Entry points: ``python -m espnet_distill.bin.<name> --help``."""
import logging

LOG_FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """The one log format of every entry point (as ESPnet's)."""
    logging.basicConfig(level=level, format=LOG_FORMAT)


def add_text_norm_args(parser, what: str = "text") -> None:
    """``--case`` and ``--punctuation``: the options of :func:`espnet_distill.data.text.normalize_text`."""
    from espnet_distill.data.text import CASES, PUNCTUATION

    parser.add_argument("--case", choices=CASES, default="lower", help=f"case folding of {what}")
    parser.add_argument("--punctuation", choices=PUNCTUATION, default="remove", help=f"punctuation in {what}")
