"""The shape of the code under services/: module count, largest module,
function lengths (median, p90, longest), with the standard library's `ast`.

    python3 bench/codeshape.py [REPO]      # REPO defaults to this checkout

Counts every `.py` file below REPO/services (`__init__.py` too, and separately
those that hold code). A function's length is its line span, decorators and
docstring included; methods and nested functions count as functions of
their own. Lines of a module are its physical lines (`wc -l`).
"""

import argparse
import ast
import statistics
from pathlib import Path


def modules(root: Path):
    return sorted((root / "services").rglob("*.py"))


def has_code(tree: ast.Module) -> bool:
    body = tree.body[1:] if ast.get_docstring(tree) is not None else tree.body
    return bool(body)


def function_lengths(tree: ast.Module):
    return [node.end_lineno - min([node.lineno] + [d.lineno for d in node.decorator_list]) + 1
            for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def shape(root: Path) -> dict:
    lines, lengths, with_code = {}, [], 0
    for path in modules(root):
        text = path.read_text()
        tree = ast.parse(text)
        lines[path.relative_to(root)] = text.count("\n")
        lengths += function_lengths(tree)
        with_code += has_code(tree)
    largest = max(lines, key=lines.get)
    return {
        "modules": len(lines), "modules_with_code": with_code,
        "largest": f"{largest} ({lines[largest]} lines)",
        "over_300_lines": sum(n > 300 for n in lines.values()),
        "functions": len(lengths), "median": statistics.median(lengths),
        "p90": percentile(lengths, 0.9), "longest": max(lengths),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("repo", nargs="?", type=Path, default=Path(__file__).resolve().parents[1],
                   help="a checkout with services/ (default: this one)")
    root = p.parse_args(argv).repo
    if not (root / "services").is_dir():
        p.error(f"{root}: no services/ directory in it")
    for name, value in shape(root).items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
