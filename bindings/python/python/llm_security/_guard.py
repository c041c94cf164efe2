"""What the integrations share: the exception a blocked scan raises and the
rule that turns a verdict into the text to pass on."""

from __future__ import annotations

from typing import Optional, Sequence

from ._native import Analysis, LlmSecurityError, Threat


class GuardBlocked(LlmSecurityError):
    """An integration's scan gave the verdict "block". ``analysis`` is the
    scan's result (None when a streamed answer was blocked: a stream is
    never analysed whole); ``threats`` the threats found (for a stream,
    those seen up to the block); ``stage`` is "input" (a prompt), "context"
    (a tool result or retrieved document) or "output" (the model's
    answer)."""

    def __init__(
        self,
        analysis: Optional[Analysis],
        *,
        stage: Optional[str] = None,
        threats: Sequence[Threat] = (),
    ) -> None:
        if analysis is not None:
            stage = analysis.stage
            threats = analysis.threats
        kinds = sorted({t.type for t in threats})
        super().__init__(f"{stage} blocked by llm-security: {', '.join(kinds) or 'policy'}")
        self.analysis = analysis
        self.stage = stage
        self.threats: tuple[Threat, ...] = tuple(threats)


def judge(analysis: Analysis, text: str) -> str:
    """The text to pass on for this analysis of it: unchanged ("allow"),
    redacted ("sanitize"), or GuardBlocked ("block")."""
    if analysis.verdict == "block":
        raise GuardBlocked(analysis)
    if analysis.verdict == "sanitize" and analysis.sanitized is not None:
        return analysis.sanitized
    return text
