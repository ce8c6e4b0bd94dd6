"""Training curves from a trainer's ``train_log.jsonl`` (PNG and JSON)."""
from __future__ import annotations

import json
import os
from pathlib import Path


def read_log(path: str | os.PathLike) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def curves(records: list[dict], keys: list[str]) -> dict[str, dict[str, list]]:
    """``{split: {key: [values], "step": [steps]}}`` for the keys present in the log.

    A resumed run may have logged some steps twice; the last record of a step wins."""
    by_split: dict[str, dict[int, dict]] = {}
    for r in records:
        by_split.setdefault(r.get("split", "train"), {})[r["step"]] = r
    out: dict[str, dict[str, list]] = {}
    for split, rows in by_split.items():
        steps = sorted(rows)
        c = {"step": steps}
        for k in keys:
            if any(k in rows[s] for s in steps):
                c[k] = [rows[s].get(k) for s in steps]
        out[split] = c
    return out


def plot_curves(log_path: str | os.PathLike, keys: list[str], png: str | os.PathLike, title: str = "") -> dict:
    """Plot ``keys`` against step (train and valid) into ``png``; also write ``<png>.json``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = curves(read_log(log_path), keys)
    present = [k for k in keys if any(k in c for c in data.values())]
    fig, axes = plt.subplots(1, max(1, len(present)), figsize=(4.5 * max(1, len(present)), 3.4), squeeze=False)
    for ax, k in zip(axes[0], present):
        for split, c in data.items():
            if k in c:
                ax.plot(c["step"], c[k], label=split, marker="o" if split == "valid" else None, markersize=3)
        ax.set_xlabel("step")
        ax.set_title(k)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    with open(Path(png).with_suffix(".json"), "w") as f:
        json.dump(data, f)
    return data


def plot_matrix(matrix: list[list[float]], rows: str, cols: str, title: str, path: Path) -> None:
    """A layer-by-layer similarity heatmap (rows x cols, values in [0, 1] printed in each cell) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * len(matrix[0]), 1.0 + 0.4 * len(matrix)))
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    ax.set_xlabel(f"{cols} layer")
    ax.set_ylabel(f"{rows} layer")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="linear CKA")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
