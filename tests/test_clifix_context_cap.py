"""`-f DIR` stops reading once the 1 MB total is spent (QA-19): `-f /usr` opened and listed every
one of its 100k+ files after the cap (over a minute). The first file that does not fit ends the
walk; the one notice says how many files were left unread."""

from __future__ import annotations

from streamchat.context import gather


def tree(root, big: int, small: int):
    root.mkdir()
    for i in range(big):  # 200 KB each: five fit the 1 MB total, the sixth does not
        (root / f"a{i}.txt").write_text(f"{i}" * 200 * 1024)
    for i in range(small):
        (root / f"b{i:03}.txt").write_text(f"small {i}\n")
    return root


def test_a_directory_past_the_cap_is_not_read_further_and_the_notice_counts_the_rest(invoke, server, tmp_path):
    root = tree(tmp_path / "proj", 6, 40)
    server.script("ok", chunks=["ok"])  # not "echo": a megabyte said back was most of this test's ~3 s
    r = invoke("-m", "openai:ok", "-f", str(root), "q")
    assert r.code == 0, r.stderr
    content = server.last_messages()[-1]["content"]
    assert "a4.txt" in content and "a5.txt" not in content and "small 0" not in content
    assert f"{root}/a5.txt (over the total size cap)" in r.stderr
    assert "40 more files not read (the 1.0 MB total was reached)" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_count_is_bounded_and_later_sources_are_counted_not_read(tmp_path):
    first, second = tree(tmp_path / "one", 6, 3), tree(tmp_path / "two", 0, 5)
    got = gather([str(first), str(second)], stdin=lambda: None, timeout=1)
    assert [p.name for p in got.included] == [f"{first}/a{i}.txt" for i in range(5)]
    assert got.not_read == 8 and got.summary().endswith("8 more files not read (the 1.0 MB total was reached)")
    many = tree(tmp_path / "many", 6, 0)
    for i in range(3):
        (many / f"c{i}").mkdir()
        for j in range(40):
            (many / f"c{i}" / f"{j}.txt").write_text("x")
    got = gather([str(many)], stdin=lambda: None, timeout=1, count_limit=50)
    assert got.not_read == 50 and "over 50 more files not read" in got.summary()


def test_a_directory_within_the_cap_says_nothing_more(invoke, server, tmp_path):
    root = tree(tmp_path / "proj", 2, 3)
    server.script("ok", chunks=["ok"])
    r = invoke("-m", "openai:ok", "-f", str(root), "q")
    assert r.code == 0 and "not read" not in r.stderr and "small 2" in server.last_messages()[-1]["content"]


def test_a_glob_past_the_cap_is_counted_not_read(tmp_path):
    root = tree(tmp_path / "proj", 6, 4)
    got = gather([f"{root}/*.txt"], stdin=lambda: None, timeout=1)
    assert len(got.included) == 5 and got.not_read == 4 and "4 more files not read" in got.summary()
