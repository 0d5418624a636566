"""The annotation page's JavaScript: its unit tests run under Node's built-in test runner."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_caption_editing_javascript_passes_its_node_tests():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the page's JavaScript tests need Node 20+ (`node --test tests/frontend/`)")
    result = subprocess.run(
        [node, "--test", "tests/frontend/"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    report = f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"node --test tests/frontend/ failed:\n{report}"


def test_annotation_page_never_writes_caption_text_as_html():
    """Captions are untrusted: the page's scripts put text on screen with textContent only."""
    for script in (ROOT / "static" / "annotator").glob("*.js"):
        source = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert sink not in source, f"{script.name} uses {sink}; render caption text with textContent"
