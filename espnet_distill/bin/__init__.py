"""Entry points: ``python -m espnet_distill.bin.<name> --help``."""
import logging

LOG_FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """The one log format of every entry point (as ESPnet's)."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
