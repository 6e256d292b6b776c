"""The README and docs/*.md name only things that exist: linked files and headings, modules run
with `python -m`, Makefile targets, config options and source paths."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The guides, the generated study reports (docs/reports/) and the kept runs' index (docs/runs/).
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "docs" / "reports").rglob("*.md")),
    ROOT / "docs" / "runs" / "README.md",
]

# Being added on other branches right now; the integrator deletes each entry once it is merged
# (test_allow_list_names_only_missing_things then fails for any entry that has arrived).
PENDING_FILES: set[str] = set()
PENDING_MODULES: set[str] = set()
PENDING_DATA: set[str] = set()
PENDING_OPTIONS: set[tuple[str, str]] = set()

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
MODULE = re.compile(r"python -m (reidtricks(?:\.\w+)*)")
MAKE = re.compile(r"(?<![\w-])make ([a-z][\w-]*)")
OPTION = re.compile(r"(?<![\w.@/-])\+?(experiment|trick|data|model)=([\w,]+)")
SOURCE_PATH = re.compile(r"^[\w./-]+/[\w-]+\.(?:py|yaml)$")
PLACEHOLDER = re.compile(r"\b([A-Z]{3,}|toy)\b")  # a pattern (NAME) or EXTENDING.md's example


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def prose(text: str) -> str:
    """The text outside fenced code blocks (links inside code are not links)."""
    return FENCE.sub("", text)


def code(text: str) -> list[str]:
    """Fenced code blocks and inline code spans: where commands and paths are written."""
    blocks = [m.group(0) for m in FENCE.finditer(text)]
    return blocks + CODE_SPAN.findall(prose(text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(md: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose(md.read_text()).splitlines():
        m = re.match(r"#{1,6} (.+)", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):", text, re.M))


def module_exists(dotted: str) -> bool:
    base = ROOT / "src" / Path(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def doc_ids() -> list[str]:
    return [rel(p) for p in DOCS]


@pytest.mark.parametrize("md", DOCS, ids=doc_ids())
def test_links_and_images_point_at_existing_files_and_headings(md: Path):
    """Every relative link or image resolves to a file in the repository; every #anchor to a
    heading of its target."""
    broken = []
    for target in LINK.findall(prose(md.read_text())):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (md.parent / path_part).resolve() if path_part else md
        if ROOT not in dest.parents and dest != ROOT:
            broken.append(f"{target}: outside the repository")
            continue
        if not dest.exists():
            if rel(dest) not in PENDING_FILES:
                broken.append(f"{target}: no such file")
            continue
        if anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
            broken.append(f"{target}: no heading #{anchor} in {rel(dest)}")
    assert not broken, broken


@pytest.mark.parametrize("md", DOCS, ids=doc_ids())
def test_python_m_names_an_existing_module(md: Path):
    """`python -m reidtricks.X` runs a module that exists under src/."""
    missing = {
        name
        for name in MODULE.findall(md.read_text())
        if not module_exists(name)
        and name.removeprefix("reidtricks.") not in PENDING_MODULES
        and not name.rpartition(".")[2].isupper()  # a placeholder: reidtricks.NAME
    }
    assert not missing, sorted(missing)


@pytest.mark.parametrize("md", DOCS, ids=doc_ids())
def test_make_names_a_makefile_target(md: Path):
    """`make X` in code names a target of the Makefile."""
    targets = makefile_targets()
    missing = {t for snippet in code(md.read_text()) for t in MAKE.findall(snippet)} - targets
    assert not missing, sorted(missing)


@pytest.mark.parametrize("md", DOCS, ids=doc_ids())
def test_config_options_exist(md: Path):
    """experiment=, +trick=, data=, model= in code name files under conf/ (every value of a
    comma-separated sweep)."""
    missing = set()
    for snippet in code(md.read_text()):
        for group, values in OPTION.findall(snippet):
            for name in filter(None, values.split(",")):
                if name.isupper() or (group, name) in PENDING_OPTIONS:
                    continue  # a placeholder such as NAME, or a pending option
                if not (ROOT / "conf" / group / f"{name}.yaml").is_file():
                    missing.add(f"{group}={name}")
    assert not missing, sorted(missing)


@pytest.mark.parametrize("md", DOCS, ids=doc_ids())
def test_source_paths_exist(md: Path):
    """A .py or .yaml path in code (`training/preflight.py`, `conf/trick/rea.yaml`) names a file
    of the repository, read from the root, src/ or src/reidtricks/."""
    bases = [ROOT, ROOT / "src", ROOT / "src" / "reidtricks"]
    missing = {
        span
        for span in CODE_SPAN.findall(prose(md.read_text()))
        if SOURCE_PATH.match(span)
        and not PLACEHOLDER.search(span)
        and not any((b / span).is_file() for b in bases)
    }
    assert not missing, sorted(missing)


def test_readme_names_the_two_commands():
    """A newcomer finds `make demo` and `make test` in the README, and both are targets."""
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text
    assert {"demo", "test"} <= makefile_targets()


def test_allow_list_names_only_missing_things():
    """Each pending entry is still missing; once it exists the entry must go, so that the check
    covers it."""
    arrived = [f for f in PENDING_FILES if (ROOT / f).exists()]
    arrived += [f"reidtricks.{m}" for m in PENDING_MODULES if module_exists(f"reidtricks.{m}")]
    arrived += [
        f"{group}={name}"
        for group, name in PENDING_OPTIONS
        if (ROOT / "conf" / group / f"{name}.yaml").is_file()
    ]
    assert not arrived, f"remove from the allow-list in tests/test_docs.py: {sorted(arrived)}"


def test_checks_catch_what_they_should(tmp_path):
    """The checks themselves: a heading's anchor, a missing module, a comma sweep's bad value."""
    assert slug("Real images (CPU): the BoT ablation on CUHK03") == (
        "real-images-cpu-the-bot-ablation-on-cuhk03"
    )
    assert slug("The Python API: `FeatureExtractor`") == "the-python-api-featureextractor"
    assert module_exists("reidtricks.train") and not module_exists("reidtricks.no_such_module")
    found = OPTION.findall("python -m reidtricks.train -m +trick=baseline,nope paths.data_dir=x")
    assert found == [("trick", "baseline,nope")]
    assert MAKE.findall("make demo && make test-fast") == ["demo", "test-fast"]
    md = tmp_path / "a.md"
    md.write_text("# One\n## One\n```\n# not a heading\n```\n")
    assert anchors(md) == {"one", "one-1"}
