"""Matched-pairs significance tests of two systems scored on the same test set, by sclite's own
``sc_stats`` (SCTK): MAPSSWE (matched pairs sentence-segment word error) and the sign test over
speakers. We do not re-implement them: each system's ``result.sgml`` (written by
:func:`espnet_distill.asr.score.run_sclite`) is piped to ``sc_stats -p -t TEST -u`` and its unified
report is parsed.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

TESTS = {"mapsswe": "MP", "sign": "SI"}


@dataclass
class TestResult:
    test: str  # mapsswe | sign
    better: str | None  # the system found better at p = 0.05, or None (no significant difference)
    p: str  # sc_stats's bound on p, e.g. "<0.001" or "0.312"


def _exe() -> list[str]:
    if shutil.which("sc_stats"):
        return ["sc_stats"]
    if shutil.which("sctk"):
        return ["sctk", "sc_stats"]
    raise RuntimeError("sc_stats not found: apt-get install sctk")


def _titled(sgml: Path, title: str) -> str:
    """The SGML alignment with its system title set to ``title`` (sc_stats names systems by it)."""
    return re.sub(r'<SYSTEM title="[^"]*"', f'<SYSTEM title="{title}"', sgml.read_text(), count=1)


def compare(sgml_a: Path, sgml_b: Path, name_a: str = "A", name_b: str = "B") -> dict[str, TestResult]:
    """Run sc_stats's MAPSSWE and sign tests on two systems' alignments of the same references."""
    text = _titled(Path(sgml_a), name_a) + _titled(Path(sgml_b), name_b)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for test, abbrev in TESTS.items():  # one test per call: several in one call crash sc_stats 1.3
            p = subprocess.run(_exe() + ["-p", "-t", test, "-u", "-n", "stats", "-O", tmp], input=text,
                               capture_output=True, text=True)
            report = Path(tmp) / "stats.stats.unified"
            if p.returncode != 0 or not report.is_file():
                raise RuntimeError(f"sc_stats -t {test} failed ({p.returncode}): {(p.stdout + p.stderr)[-300:]}")
            out[test] = parse_unified(report.read_text(), abbrev, name_a, name_b)
    return out


def parse_unified(report: str, abbrev: str, name_a: str, name_b: str) -> TestResult:
    """The cell (row ``name_a``, column ``name_b``) of sc_stats's unified comparison matrix:
    ``|  MP  ||  A  |      |  A   <0.001  ***  ||`` -> better A, p <0.001; ``~`` -> no difference."""
    test = {v: k for k, v in TESTS.items()}[abbrev]
    for line in report.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0] == abbrev and cells[2] == name_a:
            for cell in cells[3:]:
                m = re.match(r"^(\S+)\s+(<?[\d.]+)", cell)
                if m:
                    better = None if m.group(1) == "~" else m.group(1)
                    return TestResult(test, better, m.group(2))
    raise RuntimeError(f"sc_stats: no {abbrev} result for {name_a} vs {name_b} in its report")
