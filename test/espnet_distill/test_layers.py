"""The package's rooms are layered: every import (at module level or inside a function) points
to the same floor or a lower one, and no two modules import each other, directly or through
others. A newcomer can read the package bottom-up; a change to a lower floor never needs a
higher one."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "espnet_distill"

# floor of each module, by the longest matching prefix (package-relative, dotted)
FLOORS = {
    "": 0, "config": 0, "checkpoint_io": 0, "losses": 0, "jobs": 0,  # the ground floor
    "nn": 1, "data": 1,  # models' building blocks, generic data tools
    "corpora": 2, "teacher": 2, "student": 2,
    "train": 3,  # the trainer, the distillation and pretraining tasks
    "asr": 4, "analysis": 4, "stages": 4,  # ESPnet glue, measurements, the recipe's bookkeeping
    "bin": 5,  # entry points: argument parsers over the floors below
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def floor(module: str) -> int:
    best = max((p for p in FLOORS if module == p or module.startswith(p + ".") or p == ""), key=len)
    return FLOORS[best]


def imports(path: Path) -> set[str]:
    """Every espnet_distill module ``path`` imports, wherever the import statement is."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for n in names:
            if n == "espnet_distill" or n.startswith("espnet_distill."):
                out.add(n[len("espnet_distill."):] if n != "espnet_distill" else "")
    return out


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    # "from espnet_distill.data import dump" names the module data.dump; "from x.y import f" names x.y
    return {m: {i for i in imports(p) if i in modules and i != m} for m, p in modules.items()}


def test_every_import_points_to_the_same_floor_or_lower():
    upward = [f"{m} (floor {floor(m)}) imports {i} (floor {floor(i)})"
              for m, deps in graph().items() for i in deps if floor(i) > floor(m)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> list[str] | None:
        state[m] = 1
        for d in sorted(g[m]):
            if state.get(d) == 1:
                return stack + [m, d]
            if d not in state and (cycle := visit(d, stack + [m])):
                return cycle
        state[m] = 2
        return None

    for m in sorted(g):
        if m not in state:
            cycle = visit(m, [])
            assert cycle is None, " -> ".join(cycle[cycle.index(cycle[-1]):])


def test_the_layering_test_sees_imports_inside_functions(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from espnet_distill.bin import setup_logging\n    import "
                   "espnet_distill.train.trainer\n")
    assert imports(src) == {"bin", "bin.setup_logging", "train.trainer"}
    assert floor("data.tables") == 1
    assert floor("bin.export") == 5
    assert floor("checkpoint_io") == 0


def test_entry_points_stay_thin():
    """bin/ parses arguments and calls one function below (docs/design.md): at most 100 lines a file."""
    long = {p.name: n for p in sorted((PACKAGE / "bin").glob("*.py")) if (n := len(p.read_text().splitlines())) > 100}
    assert not long, f"entry points over 100 lines (move the work into a room below): {long}"
