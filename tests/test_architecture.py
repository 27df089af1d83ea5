"""The map stays true: docs/ARCHITECTURE.md, the layer rule, paths, sizes.

Pure reads of the source tree (`ast`, text), no imports of the product.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "services"
MAP = ROOT / "docs" / "ARCHITECTURE.md"
MAX_LINES = 300


def modules():
    return sorted(SERVICES.rglob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def holds_code(path: Path) -> bool:
    """An `__init__.py` with only a docstring is a folder marker, not a module."""
    tree = ast.parse(path.read_text())
    body = tree.body[1:] if ast.get_docstring(tree) is not None else tree.body
    return path.name != "__init__.py" or bool(body)


def test_every_module_is_in_the_architecture_map():
    text = MAP.read_text()
    missing = [rel(p) for p in modules() if holds_code(p) and f"`{rel(p)}`" not in text]
    assert missing == []


def test_the_architecture_map_names_only_modules_that_exist():
    named = set(re.findall(r"services/[\w/]+\.py", MAP.read_text()))
    assert sorted(name for name in named if not (ROOT / name).is_file()) == []


# Where the product names its own conf/ and docs/ files.
NAMING = ["services", "scripts", "systemd", "debian", "bench", "docs", "README.md"]
REPO_PATH = re.compile(r"(?<![\w./-])((?:conf|docs)/[\w./-]*[\w/])")


def texts():
    for name in NAMING:
        top = ROOT / name
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" not in path.parts:
                yield path, path.read_text(errors="replace")


def test_every_conf_and_docs_path_named_in_the_product_exists():
    dangling = [f"{rel(path)}: {name}" for path, text in texts()
                for name in REPO_PATH.findall(text) if not (ROOT / name).exists()]
    assert dangling == []


def test_the_product_points_at_nothing_outside_the_repository():
    outside = re.compile(r"\.\./shared|DESIGN\.md|REFERENCE-CONFIG\.md|DOVECOT24\.md")
    hits = [f"{rel(path)}: {m.group(0)}" for path, text in texts()
            for m in outside.finditer(text)]
    assert hits == []


def test_markdown_links_in_readme_and_docs_resolve():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = [f"{rel(page)}: {target}" for page in pages
              for target in re.findall(r"\]\(([^)#]+)\)", page.read_text())
              if "://" not in target and not (page.parent / target).exists()]
    assert broken == []


@pytest.mark.parametrize("page", ["README.md", *sorted(
    rel(p) for p in (ROOT / "docs").glob("*.md"))])
def test_every_table_row_belongs_to_a_table(page):
    """A blank line inside a table ends it; the rows after it render as text."""
    lines = (ROOT / page).read_text().splitlines()
    orphans = []
    for i, line in enumerate(lines):
        starts_table = i + 1 < len(lines) and re.fullmatch(r"\|[-:| ]+\|", lines[i + 1])
        in_table = i > 0 and lines[i - 1].startswith("|")
        if line.startswith("|") and not starts_table and not in_table:
            orphans.append(f"line {i + 1}: {line}")
    assert orphans == []


def imported_packages(path: Path, root: Path = SERVICES):
    """The top-level packages of chatmail_services that a module imports."""
    package = path.relative_to(root).parts[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - node.level + 1]
            if node.module:
                yield [*base, node.module][0].split(".")[0]
            else:
                yield from (base[0] if base else alias.name for alias in node.names)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [
                alias.name for alias in node.names]
            yield from (name.split(".")[1] for name in names
                        if name.startswith("chatmail_services."))


def test_daemon_packages_import_only_core():
    crossings = []
    for path in modules():
        own = path.relative_to(SERVICES).parts[0]
        if own.endswith(".py"):
            continue
        allowed = {"core"} if own == "core" else {own, "core"}
        crossings += [f"{rel(path)} imports {other}"
                      for other in sorted(set(imported_packages(path)) - allowed)]
    assert crossings == []


def test_the_import_check_sees_relative_and_absolute_imports(tmp_path):
    fake = tmp_path / "services" / "doveauth" / "x.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from ..metadata import push\nfrom . import policy\n"
                    "import chatmail_services.expire.run\nfrom .. import filtermail\n"
                    "from ..core.store import open_store\nimport os\n")
    found = set(imported_packages(fake, tmp_path / "services"))
    assert found == {"core", "doveauth", "expire", "filtermail", "metadata"}


def test_no_module_exceeds_300_lines():
    sizes = {rel(p): p.read_text().count("\n") for p in modules()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
