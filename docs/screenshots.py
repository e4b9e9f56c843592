"""Takes the documentation's screenshots from a real Dagster UI with loaded releases.

In a home of its own it writes a synthetic release and the next month evolved from it,
loads both with `cnpj-assets load`, starts `cnpj-assets ui` and photographs its pages
with the headless Chromium the UI tests drive (`cnpj_assets_tests/browser.py`). Then it
stops the UI, the browser and the embedded PostgreSQL, and removes the home. Needs the
test extra and Chromium (`apt-get install chromium`); takes a few minutes.

    python docs/screenshots.py                 # rewrite docs/images/*.png
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' browser helpers

from cnpj_assets.instance import CODE_LOCATION  # noqa: E402
from cnpj_assets_tests.browser import Browser  # noqa: E402
from cnpj_assets_tests.dagster_processes import (  # noqa: E402
    PROJECT_ROOT,
    Webserver,
    executable,
    free_port,
    start,
    stop_group,
)

IMAGES = Path(__file__).with_name("images")
FIRST, SECOND = "2026-10", "2026-11"


def _cnpj_assets(env: dict[str, str], *arguments: str) -> None:
    """One `cnpj-assets` command in the screenshots' home; fails with its output."""
    done = subprocess.run(
        [executable("cnpj-assets"), *arguments],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"cnpj-assets {' '.join(arguments)}: exit {done.returncode}\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    print(f"cnpj-assets {' '.join(arguments)}: done", flush=True)


def _load_two_releases(env: dict[str, str], landing: Path, rows: int) -> None:
    _cnpj_assets(
        env, "fake-release", "--release", FIRST, "--rows", str(rows), "--out", str(landing)
    )
    _cnpj_assets(
        env,
        "fake-release",
        "--release",
        SECOND,
        "--previous",
        str(landing / FIRST),
        "--out",
        str(landing),
    )
    for release in (FIRST, SECOND):
        _cnpj_assets(env, "load", "--release", release, "--landing", str(landing))


ZOOM_OUT = """() => {
  const icon = document.querySelector('[aria-label="zoom_out"]');
  if (!icon) return false;
  (icon.closest('button') || icon).click();
  return true;
}"""

SCROLL_TO = """(words) => {
  const all = [...document.querySelectorAll('body *')];
  const leaf = all.find((e) => e.childElementCount === 0 && e.textContent.includes(words));
  if (!leaf) return false;
  leaf.scrollIntoView({block: 'end'});
  return true;
}"""


@dataclass(frozen=True)
class Shot:
    """One picture: the page, the words it shows once drawn, and what a person does first."""

    name: str
    page: str
    words: tuple[str, ...]
    click: str | None = None  # a button or tab to click once the page shows words[0]
    then: tuple[str, ...] = ()  # the words the page shows after that click
    size: tuple[int, int] = (1600, 1000)


def _shots(url: str, last_run: str) -> list[Shot]:
    asset = f"{url}/assets/cnpj/estabelecimentos"
    return [
        Shot(
            "asset-graph.png",
            f"{url}/locations/{CODE_LOCATION}/asset-groups/cnpj",
            ("Asset Group in", "release_files", "cnpj_completo", "cnpj_current"),
            size=(2200, 1400),  # the graph: more of it in a larger window, zoomed out
        ),
        Shot("asset-estabelecimentos.png", asset, ("Latest materialization", SECOND)),
        Shot(
            "asset-plots.png",
            asset,
            ("Metadata", "rows_per_second"),
            click="Plots",
            then=("When graphing values by partition", "rows_per_second"),
        ),
        Shot("asset-checks.png", f"{asset}?view=checks", ("row_accounting", "reject_ratio")),
        Shot("run.png", f"{url}/runs/{last_run}", ("RUN_SUCCESS", "cnpj__cnpj_current")),
    ]


def _take(browser: Browser, shot: Shot) -> Path:
    width, height = shot.size
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=height,
        deviceScaleFactor=1,
        mobile=False,
    )
    browser.open(shot.page)
    try:
        browser.wait_for_text(*shot.words)
        browser.dismiss("Skip")  # the "Join the Dagster community" dialog, when it shows
        if shot.click is not None:
            browser.click(shot.click)
            browser.wait_for_text(*shot.then)
            browser.evaluate(f"({SCROLL_TO})({json.dumps(shot.then[0])})")
    except AssertionError as error:
        failed = browser.screenshot(Path(tempfile.gettempdir()) / f"failed-{shot.name}")
        raise AssertionError(
            f"{shot.page}: see {failed}; the page read:\n{browser.text()}"
        ) from error
    if shot.name == "asset-graph.png":
        for _ in range(6):
            browser.settle(1)
            browser.evaluate(f"({ZOOM_OUT})()")
    browser.settle(4)  # charts and the graph's layout animate in
    return browser.screenshot(IMAGES / shot.name)


def _photograph(webserver: Webserver, profile: Path) -> None:
    (last_run, *_) = (r["runId"] for r in webserver.runs_of(SECOND))
    browser = Browser(profile, height=1000)
    try:
        for shot in _shots(webserver.url, last_run):
            print(_take(browser, shot), flush=True)
    finally:
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="companies per release")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="cnpj-screenshots-"))
    landing, logs = home / "landing", home / "logs"
    logs.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "CNPJ_"))},
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "CNPJ_HOME": str(home / "home"),
        "CNPJ_LANDING_DIR": str(landing),
    }
    ui: subprocess.Popen | None = None
    try:
        _load_two_releases(env, landing, args.rows)
        port = free_port()
        ui = start("ui", [executable("cnpj-assets"), "ui", "--port", str(port)], env, logs)
        webserver = Webserver(f"http://127.0.0.1:{port}")
        webserver.wait_until_loaded({"ui": ui}, logs)
        IMAGES.mkdir(exist_ok=True)
        _photograph(webserver, home / "chromium")
    finally:
        if ui is not None:
            stop_group(ui)
        subprocess.run([executable("cnpj-assets"), "server", "stop"], env=env, check=False)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
