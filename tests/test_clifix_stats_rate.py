"""`--stats` for an answer that arrives in one burst printed `56375.0 tok/s · total 0.00 s`: the
tokens divided by the ~0 ms between the first and the last. Under MIN_RATE_MS of generation there is
no rate (`- tok/s`, and null in --json's stats), as for an answer without tokens."""

from __future__ import annotations

import json

from fakeserver import Script

from streamchat.events import MIN_RATE_MS, Stats


def test_no_rate_from_a_generation_too_short_to_time():
    assert Stats(ttft_ms=40.0, total_ms=41.0, tokens=50).tokens_per_s is None
    assert Stats(ttft_ms=40.0, total_ms=40.0 + MIN_RATE_MS - 1, tokens=50).as_dict()["tokens_per_s"] is None
    burst = Stats(ttft_ms=40.0, total_ms=41.0, tokens=50).summary()
    assert "- tok/s · total 0.04 s" in burst and "50000" not in burst
    assert Stats(ttft_ms=100.0, total_ms=1100.0, tokens=20).tokens_per_s == 20.0
    assert "20.0 tok/s" in Stats(ttft_ms=100.0, total_ms=1100.0, tokens=20).summary()


def test_stats_and_json_of_a_burst_answer_have_no_rate(invoke, server):
    server.script("burst", Script(chunks=["one ", "two ", "three"] * 4))
    r = invoke("-m", "openai:burst", "--stats", "q")
    assert r.code == 0, r.stderr
    line = next(line for line in r.stderr.splitlines() if "tokens ·" in line)
    assert "· - tok/s ·" in line, line
    r = invoke("-m", "openai:burst", "--json", "q")
    done = json.loads(r.out.splitlines()[-1])
    assert done["type"] == "done" and done["stats"]["tokens_per_s"] is None and done["stats"]["tokens"] > 0


def test_a_timed_answer_still_has_its_rate(invoke, server):
    server.script("slow", Script(chunks=["a", "b", "c", "d"], delay=MIN_RATE_MS / 1000 / 2))
    r = invoke("-m", "openai:slow", "--stats", "q")
    assert r.code == 0 and " tok/s · total" in r.stderr and "- tok/s" not in r.stderr, r.stderr
