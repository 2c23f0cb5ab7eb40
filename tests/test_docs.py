"""The project's docs stand on their own: no citation of files outside the repository, and
every relative link in the README and docs/ points at a file that is there."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", ".venv", "build", "dist", "__pycache__", "bench/out", ".pytest_cache"}


def _project_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        return [ROOT / p for p in out.splitlines() if (ROOT / p).is_file()]
    except (OSError, subprocess.CalledProcessError):   # not a git checkout (e.g. an sdist)
        return [p for p in ROOT.rglob("*") if p.is_file()
                and not any(str(p.relative_to(ROOT)).startswith(d) for d in SKIP_DIRS)]


def test_no_file_cites_the_outside_spec():
    this = Path(__file__).resolve()
    citing = []
    for p in _project_files():
        if p.resolve() == this or p.suffix in {".png", ".npz", ".pt", ".gz", ".dcm", ".nrrd"}:
            continue
        try:
            if "SPEC.md" in p.read_text(errors="ignore"):
                citing.append(str(p.relative_to(ROOT)))
        except OSError:
            continue
    assert not citing, f"files citing SPEC.md (not part of the project): {citing}"


@pytest.mark.parametrize("doc", ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))])
def test_relative_links_point_at_files_in_the_repository(doc):
    text = (ROOT / doc).read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    missing = [link for link in links if "://" not in link and not link.startswith("mailto:")
               and not ((ROOT / doc).parent / link).exists()]
    assert not missing, f"{doc} links to files that are not in the repository: {missing}"
