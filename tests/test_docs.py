"""The documentation travels with the code: the README's layout, docs/mapping.md's field table and every link match
the repository."""

from __future__ import annotations

import re
from pathlib import Path

from messages_bridge.protocol.request_fields import REQUEST_FIELDS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "messages_bridge"
README = (ROOT / "README.md").read_text()
MAPPING = (ROOT / "docs" / "mapping.md").read_text()
_MODULE = re.compile(r"\b(\w+\.py)\b")


def _layout_block() -> list[str]:
    section = README.split("\n## Layout\n", 1)[1]
    return section.split("```\n", 2)[1].splitlines()


def _layout_entries() -> dict[str, str]:
    """`  key   text` entries of the layout block (continuation lines joined), keyed by their first word."""
    entries: dict[str, str] = {}
    key = ""
    for line in _layout_block():
        if re.match(r"  \S", line):
            key, _, rest = line.strip().partition(" ")
            entries[key] = rest
        elif line.startswith("    ") and key:
            entries[key] += " " + line.strip()
        else:
            key = ""  # a top-level line (the package root, docs/): not an entry of the package
    return entries


def _named_modules() -> set[str]:
    named: set[str] = set()
    for key, text in _layout_entries().items():
        if key.endswith("/"):
            named |= {key + name for name in _MODULE.findall(text)}
        else:
            named |= set(_MODULE.findall(key + " " + text))
    return named


def _package_modules() -> set[str]:
    return {str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py") if path.name != "__init__.py"}


def test_the_layout_names_only_modules_that_exist() -> None:
    missing = _named_modules() - _package_modules()
    assert not missing, f"README Layout names modules that do not exist: {sorted(missing)}"


def test_the_layout_names_every_module() -> None:
    unnamed = _package_modules() - _named_modules()
    assert not unnamed, f"README Layout does not mention: {sorted(unnamed)}"


def test_the_layout_parser_sees_every_package() -> None:
    packages = {p.name + "/" for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    # Nested entries (`team/migrations/`) name the modules of a subfolder; only top-level packages are compared.
    assert packages == {k for k in _layout_entries() if k.endswith("/") and k.count("/") == 1}


def _mapping_rows() -> dict[str, tuple[str, str]]:
    table = MAPPING.split("<!-- request-fields:start -->", 1)[1].split("<!-- request-fields:end -->", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = (cells[1], cells[2])
    return rows


def test_the_mapping_doc_lists_every_request_field_decision() -> None:
    expected = {
        name: (str(rule.messages or "—"), str(rule.count_tokens or "—")) for name, rule in REQUEST_FIELDS.items()
    }
    assert _mapping_rows() == expected


_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_every_relative_link_in_the_docs_resolves() -> None:
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "bench").glob("*.md")]:
        for target in _LINK.findall(doc.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (doc.parent / target).exists(), f"{doc.relative_to(ROOT)} links to missing {target}"


# Spelled in pieces so this file does not match itself.
_OUTSIDE = re.compile("|".join([r"\.\./" + "shared", "/work" + "/", "PROTOCOL" + r"\.md", "/home" + "/"]))


def test_nothing_points_outside_the_repository() -> None:
    roots = [ROOT / "src", ROOT / "tests", ROOT / "bench", ROOT / "scripts", ROOT / "docs"]
    files = [ROOT / "README.md"] + [p for r in roots for p in r.rglob("*") if p.is_file()]
    offenders = [
        str(p.relative_to(ROOT))
        for p in files
        if p.suffix in (".py", ".md", ".sh", ".toml", ".yaml", "")
        and "fixtures" not in p.parts
        and ".venv-litellm" not in str(p)
        and "results" not in p.parts
        and _OUTSIDE.search(p.read_text(errors="replace"))
    ]
    assert not offenders
