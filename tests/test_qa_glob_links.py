"""`-f 'dir/**'` never walks through a symlink out of `dir`, nor around a link loop.

glob's `**` follows symlinked folders: `dir/usr -> /usr` was walked whole (over a minute on this
machine) before streamchat filtered the matches out, and a loop (`sub/up -> ..`) beside a link out
walked that link once per level, to the kernel's 40 links: no end in sight. The walk now stops at
such links (still listed as skipped) and matches what glob matches everywhere else.
"""

from __future__ import annotations

import glob
import os

import pytest

from streamchat.context import _glob_inside, gather


@pytest.fixture
def tree(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for path in ("p/a.md", "p/b.txt", "p/.hidden.md", "p/sub/c.md", "p/sub/deep/d.md", "p/sub/deep/e.py",
                 "p/.git/config", "p/sub/.cache/x.md", "p/x.md/inner.md"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("x\n")
    return tmp_path


@pytest.mark.parametrize("pattern", ["p/**", "p/**/*.md", "p/*", "p/*.md", "p/*/*.md", "p/**/deep/*", "p/.*",
                                     "p/**/.*", "p/s?b/*", "p/[ab].*", "*/*.txt", "p/**/*.py", "p/.git/*"])
def test_the_walk_matches_what_glob_matches_without_links(tree, pattern):
    assert sorted(os.path.normpath(m) for m in _glob_inside(pattern)) == \
        sorted(os.path.normpath(m) for m in glob.glob(pattern, recursive=True))


@pytest.mark.timeout(60)
def test_links_out_and_loops_are_not_walked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    maze = tmp_path / "maze"  # outside the project: two links back to itself, 2**40 paths for glob's **
    maze.mkdir()
    (maze / "secret.md").write_text("PRIVATE\n")
    (maze / "left").symlink_to(".")
    (maze / "right").symlink_to(".")
    proj = tmp_path / "proj"
    (proj / "sub").mkdir(parents=True)
    (proj / "a.md").write_text("hi\n")
    (proj / "sub" / "up").symlink_to("..")
    (proj / "maze").symlink_to("../maze")
    for source in ("proj/**", "proj/**/*.md"):
        pieces = gather([source], stdin=lambda: None, timeout=5).pieces
        assert [p.name for p in pieces if p.text is not None] == ["proj/a.md"]
        assert {p.name: p.note for p in pieces if p.text is None} == {"proj/maze": "symlink out of proj"}
