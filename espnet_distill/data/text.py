"""The one text rule: how every transcript is normalised before tokenising, dumping and scoring.

:func:`normalize_text`: case folding and punctuation replaced by spaces (Unicode punctuation except
apostrophes inside words: "picture-books" -> "picture books"), whitespace collapsed; recipes choose the options
(``--text_norm_opts``), and training, the dump and sclite scoring all apply the same ones.
"""
from __future__ import annotations

import re
import unicodedata

CASES = ("lower", "upper", "keep")
PUNCTUATION = ("remove", "keep")


def normalize_text(text: str, case: str = "lower", punctuation: str = "remove") -> str:
    """The documented scoring/training normalisation: ``case`` lower|upper|keep; ``punctuation``
    remove (every Unicode punctuation character except apostrophes inside words becomes a space) | keep;
    whitespace collapsed."""
    if case == "lower":
        text = text.lower()
    elif case == "upper":
        text = text.upper()
    if punctuation == "remove":
        text = "".join(" " if unicodedata.category(c).startswith("P") and c != "'" else c for c in text)
        text = re.sub(r"(?<!\w)'|'(?!\w)", " ", text)
    return " ".join(text.split())
