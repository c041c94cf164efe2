"""Typed errors: InputTooLarge, ConfigError, their base class."""

import pytest

from llm_security import ConfigError, InputTooLarge, LlmSecurityError, SecurityConfig, SecurityEngine


def test_hierarchy():
    assert issubclass(InputTooLarge, LlmSecurityError)
    assert issubclass(ConfigError, LlmSecurityError)
    assert issubclass(LlmSecurityError, Exception)
    assert InputTooLarge.__module__ == "llm_security"


def test_input_too_large_on_every_scan():
    e = SecurityEngine(SecurityConfig(max_input_bytes=100))
    big = "é" * 60  # 60 characters, 120 UTF-8 bytes: the limit is in bytes
    calls = [
        lambda: e.analyze_input(big),
        lambda: e.analyze_context(big, "document"),
        lambda: e.validate_output(big),
        lambda: e.sanitize(big),
    ]
    for call in calls:
        with pytest.raises(InputTooLarge) as info:
            call()
        assert info.value.length == 120 and info.value.max_bytes == 100
        assert "120 bytes" in str(info.value) and "100" in str(info.value)
    assert e.analyze_input("é" * 50).is_secure  # exactly 100 bytes


def test_batch_error_names_the_index():
    e = SecurityEngine(SecurityConfig(max_input_bytes=10))
    for call in [e.analyze_input_batch, e.validate_output_batch, e.sanitize_batch]:
        with pytest.raises(InputTooLarge) as info:
            call(["short", "this one is too long"])
        assert info.value.index == 1
        assert str(info.value).startswith("texts[1]: ")
        assert info.value.length == 20 and info.value.max_bytes == 10
    with pytest.raises(InputTooLarge, match=r"texts\[0\]"):
        e.analyze_context_batch(["this one is too long"], "email")


def test_errors_are_catchable_by_the_base_class():
    with pytest.raises(LlmSecurityError):
        SecurityEngine(SecurityConfig(max_input_bytes=1)).analyze_input("ab")
    with pytest.raises(LlmSecurityError):
        SecurityConfig(no_such_key=1)
