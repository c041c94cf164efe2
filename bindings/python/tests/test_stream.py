"""SecurityEngine.output_stream: a completion validated chunk by chunk."""

import threading

import pytest

from llm_security import OutputStream, StreamStep

SECRET = "sk-proj-Zq8vN2mXk4Lp7Rt1Wy5Hc9Bd3Fg6Js0Qe"


def run(stream, chunks):
    """Pushes every chunk; the released text, the steps."""
    steps = [stream.push(c) for c in chunks] + [stream.finish()]
    return "".join(s.text for s in steps), steps


def test_a_secret_split_across_three_chunks_is_redacted_whole(engine):
    text = f"Here is the key you asked for: {SECRET} and nothing else."
    at = text.index(SECRET)
    pieces = [text[: at + 12], text[at + 12 : at + 30], text[at + 30 :]]
    stream = engine.output_stream()
    assert isinstance(stream, OutputStream)
    out, steps = run(stream, pieces)
    assert out == "Here is the key you asked for: [REDACTED_OPENAI_API_KEY_1] and nothing else."
    for step in steps:
        assert isinstance(step, StreamStep)
        for part in (SECRET[:12], SECRET[12:30], SECRET[30:]):
            assert part not in step.text
    threats = [t for s in steps for t in s.threats]
    assert [t.type for t in threats] == ["secret_leak"]
    # Spans index the whole completion as received.
    assert text[threats[0].span[0] : threats[0].span[1]] == SECRET
    assert stream.verdict == "sanitize" and not stream.blocked


def test_each_chunk_is_pushed_once_and_scanned_a_bounded_number_of_times(engine):
    words = [f"word{i} " for i in range(400)]
    stream = engine.output_stream(hold_back_bytes=64, min_scan_bytes=32)
    out, steps = run(stream, words)
    assert out == "".join(words)
    stats = stream.stats
    assert stats["chunks"] == len(words)
    assert stats["bytes_in"] == len("".join(words)) == stats["bytes_out"]
    # One scan per 32 new bytes at most, plus the final flush; each byte is
    # scanned about 1 + (64 + 64) / 32 = 5 times, not once per chunk pushed.
    assert stats["scans"] <= stats["bytes_in"] // 32 + 1
    assert stats["bytes_scanned"] <= 6 * stats["bytes_in"]
    # Released as it arrives: most steps before the end carry text.
    assert sum(1 for s in steps[:-1] if s.text) > len(words) // 10


def test_text_is_held_back_until_the_end_or_enough_arrives(engine):
    stream = engine.output_stream()
    first = stream.push("A short answer, ")
    assert first.text == "" and first.threats == () and not first.blocked
    assert stream.finish().text == "A short answer, "
    # Once finished, pushes are ignored.
    assert stream.push("more").text == ""
    assert stream.finish().text == ""


def test_a_blocked_stream_releases_nothing_more(engine):
    token = engine.issue_canary()
    stream = engine.output_stream(system_prompt=f"You are a support bot. {token}", hold_back_bytes=16, min_scan_bytes=1)
    released = stream.push("First a harmless sentence that is long enough to release. ").text
    step = stream.push(f"Then the marker {token} appears.")
    assert step.blocked and step.text == ""
    assert any(t.type == "system_prompt_leak" for t in step.threats)
    assert stream.blocked and stream.verdict == "block"
    assert token not in released
    after = stream.push(" More text.")
    assert after.blocked and after.text == ""
    assert stream.finish().text == ""


def test_spans_are_string_indices_with_non_ascii_text(engine):
    text = "Grüße aus Köln – 日本語のテキスト. Schreib an jane.doe@example.com bitte."
    chunks = [text[i : i + 7] for i in range(0, len(text), 7)]
    stream = engine.output_stream(hold_back_bytes=32, min_scan_bytes=8)
    out, steps = run(stream, chunks)
    assert out == text.replace("jane.doe@example.com", "[REDACTED_EMAIL_1]")
    (threat,) = [t for s in steps for t in s.threats]
    assert text[threat.span[0] : threat.span[1]] == "jane.doe@example.com"
    start, end = threat.byte_span
    assert text.encode()[start:end] == b"jane.doe@example.com"


def test_options_out_of_range_raise_value_error(engine):
    with pytest.raises(ValueError, match="min_scan_bytes"):
        engine.output_stream(min_scan_bytes=0)
    with pytest.raises(ValueError, match="max_held_bytes"):
        engine.output_stream(hold_back_bytes=1024, max_held_bytes=1024)
    with pytest.raises(OverflowError):
        engine.output_stream(hold_back_bytes=-1)


def test_step_to_dict_and_repr(engine):
    stream = engine.output_stream(hold_back_bytes=8, min_scan_bytes=1)
    step = stream.push(f"key {SECRET} and some more words after it")
    d = step.to_dict()
    assert set(d) == {"text", "threats", "blocked"}
    assert d["threats"][0]["type"] == "secret_leak"
    assert "StreamStep(" in repr(step) and SECRET not in repr(step)
    assert repr(stream).startswith("OutputStream(verdict='sanitize'")


def test_pushes_from_threads_keep_the_stream_consistent(engine):
    stream = engine.output_stream(hold_back_bytes=16, min_scan_bytes=4)
    pieces = [f"part{i:03d} " for i in range(200)]
    out: list[str] = []
    lock = threading.Lock()

    def worker(mine):
        for p in mine:
            text = stream.push(p).text
            with lock:
                out.append(text)

    threads = [threading.Thread(target=worker, args=(pieces[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.append(stream.finish().text)
    # Every byte pushed is released exactly once, whatever the interleaving.
    assert len("".join(out)) == len("".join(pieces))
    assert stream.stats["chunks"] == len(pieces)
