"""The documentation says what the code does: the schema reference is the specs' current
rendering, every command and option the pages show exists in that command's `--help`,
and every link between the pages (and from the README into them) reaches a page and a
heading that exist.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted([*DOCS.glob("*.md"), ROOT / "README.md"])

CODE = re.compile(r"```([^\n]*)\n(.*?)```|`([^`\n]+)`", re.DOTALL)
COMMAND = re.compile(r"cnpj-assets((?:[ \t]+[^\s`;#&),\"']+)+)")
SCRIPT = re.compile(r"python ((?:benchmarks|docs)/[\w-]+\.py)((?:[ \t]+[^\s`;#&)\"']+)*)")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
CHOICES = re.compile(r"\{([a-z][a-z0-9,-]*)\}")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*$", re.MULTILINE)
SNIPPET = re.compile(r'^--8<-- "([^"]+)"', re.MULTILINE)


def _code_of(page: Path) -> list[str]:
    """The code the page shows: fenced blocks (diagrams aside) and inline spans, by line."""
    found = []
    for language, block, span in CODE.findall(page.read_text()):
        if language != "mermaid":
            found += (block or span).replace("\\|", "|").splitlines()
    return found


def _shown(pattern: re.Pattern[str]) -> dict[tuple[str, ...], set[str]]:
    """Each command the pages show (program and its words before the first option), with
    the options shown with it."""
    shown: dict[tuple[str, ...], set[str]] = {}
    for page in PAGES:
        for line in _code_of(page):
            for match in pattern.finditer(line):
                words = "".join(match.groups()).split()
                command = tuple(w for w in words[: _first_option(words)] if w[0] not in "<[(")
                shown.setdefault(command, set()).update(OPTION.findall(match.group(0)))
    return shown


def _lists(help_text: str, option: str) -> bool:
    """Whether the help names the option itself (`--rows`, not only `--rows-per-file`)."""
    return re.search(rf"{re.escape(option)}(?![\w-])", help_text) is not None


def _first_option(words: list[str]) -> int:
    return next((i for i, w in enumerate(words) if w.lstrip("[(").startswith("-")), len(words))


@functools.cache
def _help(*command: str) -> str:
    done = subprocess.run(
        [*command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (
        f"{' '.join(command)} --help: exit {done.returncode}\n{done.stderr}"
    )
    return done.stdout


def _cli(words: tuple[str, ...]) -> list[str]:
    """The argv whose --help lists the options: `cnpj-assets <command>`, the subcommand
    checked against its choices (`server status|stop`), positional values dropped."""
    cnpj_assets = str(Path(sys.executable).with_name("cnpj-assets"))
    if not words:
        return [cnpj_assets]
    command, *rest = words
    usage = _help(cnpj_assets, command).split("\n\n")[0]
    for choices in CHOICES.findall(usage):
        for given in rest[:1]:
            for choice in given.split("|"):
                assert choice in choices.split(","), (
                    f"cnpj-assets {command} {choice}: no such choice"
                )
    return [cnpj_assets, command]


def test_the_schema_reference_is_what_the_specs_make_it() -> None:
    spec = importlib.util.spec_from_file_location("schema_reference", DOCS / "schema_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DOCS / "tables.md").read_text() == module.render(), (
        "docs/tables.md is stale: run python docs/schema_reference.py"
    )


def test_every_command_and_option_the_docs_show_is_in_its_help() -> None:
    shown = _shown(COMMAND)
    assert {("load",), ("demo",), ("lineage",), ("server", "stop")} <= set(shown), shown
    missing = []
    for words, options in sorted(shown.items()):
        argv = _cli(words)
        text = _help(*argv) + (_help(argv[0]) if len(argv) > 1 else "")
        missing += [f"{' '.join(argv[1:])} {o}" for o in sorted(options) if not _lists(text, o)]
    assert not missing, f"options the docs show that --help does not: {missing}"


def test_every_script_and_option_the_docs_show_is_in_its_help() -> None:
    shown = _shown(SCRIPT)
    assert ("benchmarks/bench_full.py",) in shown and ("docs/schema_reference.py",) in shown
    missing = []
    for (script, *_), options in sorted(shown.items()):
        text = _help(sys.executable, str(ROOT / script))
        missing += [f"{script} {o}" for o in sorted(options) if not _lists(text, o)]
    assert not missing, f"options the docs show that --help does not: {missing}"


def _slug(heading: str) -> str:
    """The anchor MkDocs gives a heading (Python-Markdown's toc slugify)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


def _anchors(page: Path) -> set[str]:
    text = page.read_text()
    text += "".join((ROOT / included).read_text() for included in SNIPPET.findall(text))
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return {_slug(h) for h in HEADING.findall(text)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_internal_link_reaches_a_page_and_its_heading(page: Path) -> None:
    broken = []
    for target in LINK.findall(re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    assert not broken, f"{page.name}: {broken}"
