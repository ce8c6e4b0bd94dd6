"""Kaldi-style scoring: trn files, sclite (from Debian's sctk), and our own alignment counts.

    counts = align_counts(ref_words, hyp_words)   # sclite's weights: sub 4, ins 3, del 3
    score_dir(ref, hyp, utt2spk, "exp/.../score_wer", unit="word")  # ref.trn, hyp.trn, result.txt

``result.txt`` is sclite's report (per-speaker and summary tables). An empty hypothesis is
scored as deletions. Texts are normalised with :func:`espnet_distill.data.text.normalize_text`
before scoring (case and punctuation, as configured).
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass
class Counts:
    snt: int = 0
    ref: int = 0
    corr: int = 0
    sub: int = 0
    dele: int = 0
    ins: int = 0
    snt_err: int = 0

    @property
    def err(self) -> int:
        return self.sub + self.dele + self.ins

    def add(self, o: "Counts") -> "Counts":
        return Counts(self.snt + o.snt, self.ref + o.ref, self.corr + o.corr, self.sub + o.sub, self.dele + o.dele,
                      self.ins + o.ins, self.snt_err + o.snt_err)

    def rate(self) -> float:
        return 100.0 * self.err / max(1, self.ref)

    def kaldi_line(self, name: str = "WER") -> str:
        return f"%{name} {self.rate():.2f} [ {self.err} / {self.ref}, {self.ins} ins, {self.dele} del, {self.sub} sub ]"


def align_counts(ref: list[str], hyp: list[str]) -> Counts:
    """Minimum-cost alignment with sclite's weights (correct 0, substitution 4, insertion 3,
    deletion 3); returns the counts of that alignment."""
    n, m = len(ref), len(hyp)
    # cost, then (sub, del, ins) for tie-breaking towards fewer errors
    dp = [[(0, 0, 0, 0)] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):
        c = dp[i - 1][0]
        dp[i][0] = (c[0] + 3, c[1], c[2] + 1, c[3])
    for j in range(1, m + 1):
        c = dp[0][j - 1]
        dp[0][j] = (c[0] + 3, c[1], c[2], c[3] + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d = dp[i - 1][j - 1]
            same = ref[i - 1] == hyp[j - 1]
            diag = (d[0] + (0 if same else 4), d[1] + (0 if same else 1), d[2], d[3])
            u = dp[i - 1][j]
            up = (u[0] + 3, u[1], u[2] + 1, u[3])
            left_ = dp[i][j - 1]
            left = (left_[0] + 3, left_[1], left_[2], left_[3] + 1)
            dp[i][j] = min(diag, up, left, key=lambda t: (t[0], t[1] + t[2] + t[3]))
    _, sub, dele, ins = dp[n][m]
    corr = n - sub - dele
    return Counts(1, n, corr, sub, dele, ins, int(sub + dele + ins > 0))


def units(text: str, unit: str) -> list[str]:
    if unit == "word":
        return text.split()
    if unit == "char":
        return [c for c in text.replace(" ", "")] if text.strip() else []
    raise ValueError(f"unit must be word or char, got {unit!r}")


def write_trn(path: Path, texts: dict[str, str], utt2spk: dict[str, str], unit: str) -> None:
    """sclite trn lines ``tokens (spk-utt)``; for CER the tokens are characters."""
    with open(path, "w", encoding="utf-8") as f:
        for utt in sorted(texts):
            spk = utt2spk.get(utt, utt.split("-")[0])
            f.write(f"{' '.join(units(texts[utt], unit))} ({spk}-{utt})\n")


def run_sclite(ref_trn: Path, hyp_trn: Path, result: Path) -> Counts | None:
    """Run sclite; write its full report to ``result``; return its Sum counts (None without sclite)."""
    exe = ["sclite"] if shutil.which("sclite") else (["sctk", "sclite"] if shutil.which("sctk") else None)
    if exe is None:
        logger.warning("sclite not found (apt-get install sctk): %s not written", result)
        return None
    reports = []
    # the alignments with per-speaker counts, the percentage summary, and the SGML alignment that
    # sc_stats's significance tests read (result.sgml beside result.txt)
    # sclite titles its tables with the hypothesis path and widens them to fit it, and a long one
    # breaks the per-speaker table: run it beside the files so that the title is the file name
    where = hyp_trn.parent
    ref = ref_trn.name if ref_trn.parent == where else str(ref_trn.resolve())
    for fmt in ("all", "sum", "sgml"):
        cmd = exe + ["-r", ref, "trn", "-h", hyp_trn.name, "trn", "-i", "rm", "-o", fmt, "stdout"]
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=where)
        if p.returncode != 0:
            raise RuntimeError(f"sclite failed ({p.returncode}): {p.stderr[-500:]}")
        reports.append(p.stdout)
    result.write_text(reports[1] + "\n" + reports[0])
    result.with_suffix(".sgml").write_text(reports[2])
    return parse_sclite_counts(reports[0] + reports[1])


def parse_sclite_counts(report: str) -> Counts | None:
    """The counts of sclite's '-o sum' table: '| Sum | snt wrd | corr sub del ins err s.err |'."""
    for line in report.splitlines():
        m = re.match(r"^\s*\|\s*Sum\s*\|\s*(\d+)\s+(\d+)\s*\|\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\|",
                     line)
        if m:
            snt, wrd, corr, sub, dele, ins, err, serr = map(int, m.groups())
            return Counts(snt, wrd, corr, sub, dele, ins, serr)
    return None


CROSS_CHECK_CELLS = 20_000_000  # our alignment runs at about 0.5 M cells/s: skip it above this


def cost(c: Counts) -> int:
    """The alignment cost under sclite's weights (substitution 4, insertion and deletion 3)."""
    return 4 * c.sub + 3 * (c.dele + c.ins)


def score_dir(ref: dict[str, str], hyp: dict[str, str], utt2spk: dict[str, str], outdir: str | Path,
              unit: str = "word", cross_check: str = "auto") -> tuple[Counts, Counts | None, Counts | None]:
    """Score ``hyp`` against ``ref`` (normalised texts) into ``outdir``: ref.trn, hyp.trn,
    result.txt (sclite). Missing hypotheses count as empty (all deletions).

    sclite's counts are the result. Our own alignment is the cross-check (``cross_check``: "auto"
    runs it when the DP has at most CROSS_CHECK_CELLS cells, "always", "never"), and it is the
    result only where sclite is not installed. Both are minimum-cost alignments, which can split
    the same cost differently between substitutions, insertions and deletions: the check compares
    costs, and a differing cost is an error. Returns (result, ours or None, sclite's or None)."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    missing = [u for u in ref if u not in hyp]
    if missing:
        logger.warning("%d utterances have no hypothesis (scored as empty), e.g. %s", len(missing), missing[:3])
    hyp_all = {u: hyp.get(u, "") for u in ref}
    write_trn(out / "ref.trn", ref, utt2spk, unit)
    write_trn(out / "hyp.trn", hyp_all, utt2spk, unit)
    sc = run_sclite(out / "ref.trn", out / "hyp.trn", out / "result.txt")
    pairs = [(units(ref[u], unit), units(hyp_all[u], unit)) for u in ref]
    cells = sum((len(r) + 1) * (len(h) + 1) for r, h in pairs)
    ours = None
    if sc is None or cross_check == "always" or (cross_check == "auto" and cells <= CROSS_CHECK_CELLS):
        ours = Counts()
        for r, h in pairs:
            ours = ours.add(align_counts(r, h))
    elif cross_check == "auto":
        logger.info("%s: %d alignment cells: cross-check with our alignment skipped (sclite's counts stand)", out,
                    cells)
    if sc is not None and ours is not None and (cost(sc), sc.ref) != (cost(ours), ours.ref):
        raise RuntimeError(f"{out}: sclite's alignment ({sc}) and ours ({ours}) have different costs "
                           f"({cost(sc)} vs {cost(ours)}): one of the scorers is wrong")
    return (sc if sc is not None else ours), ours, sc


def results_row(name: str, c: Counts) -> str:
    """ESPnet RESULTS.md row: |dataset|Snt|Wrd|Corr|Sub|Del|Ins|Err|S.Err| (percentages)."""
    r = max(1, c.ref)
    return (f"|{name}|{c.snt}|{c.ref}|{100 * c.corr / r:.1f}|{100 * c.sub / r:.1f}|{100 * c.dele / r:.1f}|"
            f"{100 * c.ins / r:.1f}|{100 * c.err / r:.1f}|{100 * c.snt_err / max(1, c.snt):.1f}|")
