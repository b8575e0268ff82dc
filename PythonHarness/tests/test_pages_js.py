"""The HTML pages' scripts and styles (Sources/HeapscopeReports/Pages): every
script parses (`node --check`), and every file there is embedded by
Package.swift and documented in the folder's README.md."""
import re
import shutil
import subprocess

import pytest

from conftest import REPO

PAGES = REPO / "Sources" / "HeapscopeReports" / "Pages"
NODE = shutil.which("node") or shutil.which("nodejs")


@pytest.mark.skipif(not NODE, reason="node is not installed")
@pytest.mark.parametrize("script", sorted(p.name for p in PAGES.glob("*.js")))
def test_script_parses(script):
    proc = subprocess.run([NODE, "--check", str(PAGES / script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_page_file_is_embedded_and_documented():
    files = sorted(p.name for p in PAGES.iterdir() if p.suffix in (".js", ".css"))
    assert len(files) == 10, files
    package = (REPO / "Package.swift").read_text()
    pages = re.search(r'resources: \[([^\]]*)\]\.flatMap', package).group(1)
    names = re.findall(r'"(\w+)"', pages)
    assert sorted(n + ext for n in names for ext in (".css", ".js")) == files
    readme = (PAGES / "README.md").read_text()
    for name in files:
        assert name in readme, name
