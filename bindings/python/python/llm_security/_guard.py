"""What the integrations share: the exception a blocked scan raises and the
rule that turns a verdict into the text to pass on."""

from __future__ import annotations

from ._native import Analysis, LlmSecurityError


class GuardBlocked(LlmSecurityError):
    """An integration's scan gave the verdict "block". ``analysis`` is the
    scan's result; ``stage`` is "input" (a prompt), "context" (a tool
    result) or "output" (the model's answer)."""

    def __init__(self, analysis: Analysis) -> None:
        kinds = sorted({t.type for t in analysis.threats})
        super().__init__(f"{analysis.stage} blocked by llm-security: {', '.join(kinds) or 'policy'}")
        self.analysis = analysis
        self.stage = analysis.stage


def judge(analysis: Analysis, text: str) -> str:
    """The text to pass on for this analysis of it: unchanged ("allow"),
    redacted ("sanitize"), or GuardBlocked ("block")."""
    if analysis.verdict == "block":
        raise GuardBlocked(analysis)
    if analysis.verdict == "sanitize" and analysis.sanitized is not None:
        return analysis.sanitized
    return text
