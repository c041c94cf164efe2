"""LangChain guardrails: Runnables that scan what goes into a model and what
comes out of it.

    from llm_security import SecurityEngine
    from llm_security.langchain import input_guard, output_guard

    engine = SecurityEngine()
    chain = prompt | input_guard(engine) | model | output_guard(engine)

The engine's verdict decides, as configured by its policy: "block" raises
:class:`GuardBlocked` (the model is not called for a blocked input),
"sanitize" passes the text on with secrets and personal data replaced by
placeholders, "allow" passes it on unchanged.

:func:`input_guard` takes a string, a dict of template variables (its string
values are scanned), a prompt value or a list of messages. Of messages, the
user's (``human``) are scanned as prompts and tool results (``tool``) as
untrusted content (``analyze_context(text, "tool_output")``); system and AI
messages are the application's own and pass unscanned. :func:`output_guard`
takes a string or a message (the model's answer). Both run the scan in a
worker thread when the chain is awaited (``ainvoke``, ``astream``).

Needs ``langchain-core`` (``pip install llm-security[langchain]``).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal, Optional, Union

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage
from langchain_core.prompt_values import ChatPromptValue, PromptValue, StringPromptValue
from langchain_core.runnables import RunnableLambda

from . import SecurityEngine
from ._guard import GuardBlocked, judge

__all__ = ["GuardBlocked", "input_guard", "output_guard"]

GuardInput = Union[str, dict[str, Any], PromptValue, list[BaseMessage]]
GuardOutput = Union[str, BaseMessage]


def _message_text(message: BaseMessage) -> Optional[str]:
    """A message's text when its content is a plain string."""
    return message.content if isinstance(message.content, str) else None


def _guard_messages(engine: SecurityEngine, messages: list[BaseMessage]) -> list[BaseMessage]:
    out: list[BaseMessage] = []
    for m in messages:
        text = _message_text(m)
        if text is not None and isinstance(m, HumanMessage):
            m = _replace_content(m, judge(engine.analyze_input(text), text))
        elif text is not None and isinstance(m, ToolMessage):
            m = _replace_content(m, judge(engine.analyze_context(text, "tool_output"), text))
        elif isinstance(m, (HumanMessage, ToolMessage)) and isinstance(m.content, list):
            # Multi-part content: scan each text part.
            parts: list[Union[str, dict[str, Any]]] = []
            for part in m.content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    scanned = _scan_part(engine, m, part["text"])
                    parts.append({**part, "text": scanned})
                elif isinstance(part, str):
                    parts.append(_scan_part(engine, m, part))
                else:
                    parts.append(part)
            m = m.model_copy(update={"content": parts})
        out.append(m)
    return out


def _scan_part(engine: SecurityEngine, m: BaseMessage, text: str) -> str:
    if isinstance(m, ToolMessage):
        return judge(engine.analyze_context(text, "tool_output"), text)
    return judge(engine.analyze_input(text), text)


def _replace_content(m: BaseMessage, text: str) -> BaseMessage:
    """The message with this text, or the message itself when unchanged."""
    return m if m.content == text else m.model_copy(update={"content": text})


def _guard_input(engine: SecurityEngine, value: GuardInput) -> GuardInput:
    if isinstance(value, str):
        return judge(engine.analyze_input(value), value)
    if isinstance(value, StringPromptValue):
        return StringPromptValue(text=judge(engine.analyze_input(value.text), value.text))
    if isinstance(value, ChatPromptValue):
        return ChatPromptValue(messages=_guard_messages(engine, list(value.messages)))
    if isinstance(value, list) and all(isinstance(m, BaseMessage) for m in value):
        return _guard_messages(engine, value)
    if isinstance(value, dict):
        return {k: judge(engine.analyze_input(v), v) if isinstance(v, str) else v for k, v in value.items()}
    raise TypeError(
        f"input_guard takes a str, a dict, a prompt value or a list of messages, not {type(value).__name__}"
    )


def _guard_output(
    engine: SecurityEngine,
    value: GuardOutput,
    system_prompt: Optional[str],
    expected_format: Optional[Literal["json", "xml"]],
    json_schema: Optional[Union[dict[str, Any], str, bool]],
) -> GuardOutput:
    def check(text: str) -> str:
        analysis = engine.validate_output(
            text, system_prompt=system_prompt, expected_format=expected_format, json_schema=json_schema
        )
        return judge(analysis, text)

    if isinstance(value, str):
        return check(value)
    if isinstance(value, BaseMessage):
        text = _message_text(value)
        if text is not None:
            return _replace_content(value, check(text))
        if isinstance(value.content, list):
            parts = [
                {**p, "text": check(p["text"])} if isinstance(p, dict) and isinstance(p.get("text"), str) else p
                for p in value.content
            ]
            return value.model_copy(update={"content": parts})
        return value
    raise TypeError(f"output_guard takes a str or a message, not {type(value).__name__}")


def input_guard(engine: Optional[SecurityEngine] = None) -> RunnableLambda[GuardInput, GuardInput]:
    """A Runnable that scans a chain's input before the model sees it.

    Passes the input on (sanitized where the verdict is "sanitize") or
    raises :class:`GuardBlocked`. ``engine`` defaults to one with every
    scanner on.
    """
    eng = engine if engine is not None else SecurityEngine()

    def guard(value: GuardInput) -> GuardInput:
        return _guard_input(eng, value)

    async def aguard(value: GuardInput) -> GuardInput:
        return await asyncio.to_thread(_guard_input, eng, value)

    return RunnableLambda(guard, afunc=aguard, name="llm_security_input_guard")


def output_guard(
    engine: Optional[SecurityEngine] = None,
    *,
    system_prompt: Optional[str] = None,
    expected_format: Optional[Literal["json", "xml"]] = None,
    json_schema: Optional[Union[dict[str, Any], str, bool]] = None,
) -> RunnableLambda[GuardOutput, GuardOutput]:
    """A Runnable that validates a model's answer (a string or a message).

    ``system_prompt``, ``expected_format`` and ``json_schema`` are passed to
    :meth:`SecurityEngine.validate_output`. Passes the answer on (secrets
    and personal data redacted where the verdict is "sanitize") or raises
    :class:`GuardBlocked`.
    """
    eng = engine if engine is not None else SecurityEngine()

    def guard(value: GuardOutput) -> GuardOutput:
        return _guard_output(eng, value, system_prompt, expected_format, json_schema)

    async def aguard(value: GuardOutput) -> GuardOutput:
        return await asyncio.to_thread(_guard_output, eng, value, system_prompt, expected_format, json_schema)

    return RunnableLambda(guard, afunc=aguard, name="llm_security_output_guard")
