"""A drop-in guard for the ``openai`` client: ``guarded(OpenAI())``.

    from openai import OpenAI
    from llm_security.openai import guarded

    client = guarded(OpenAI())
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[...])

``client.chat.completions.create`` scans the request before sending it and
the answer before returning it; everything else on the client passes
through untouched. Works the same with ``AsyncOpenAI`` (the scans then run
in a worker thread).

- Messages: ``user`` messages are scanned as prompts (``analyze_input``),
  ``tool`` and ``function`` results as untrusted content
  (``analyze_context(text, "tool_output")``); system, developer and
  assistant messages are the application's own and pass unscanned. Text
  parts of multi-part content are scanned one by one.
- The answer: each choice's message text is validated
  (``validate_output``), with the request's first system or developer
  message as the system prompt to check for leakage.
- Verdicts: "block" raises :class:`~llm_security.GuardBlocked` (a blocked
  request is never sent); "sanitize" passes the text on with secrets and
  personal data replaced by placeholders; "allow" passes it unchanged.
- Streams (``stream=True``): each choice's text is released line by line,
  once the line has been scanned: a chunk carries the complete lines that
  arrived up to it (sanitized when the verdict is "sanitize") and the rest
  of the text comes with the chunk that has the finish reason. A "block"
  verdict stops the stream with GuardBlocked before the offending line is
  released. A value that spans lines (a PEM private key) is judged as a
  whole by the block check only; its redaction works line by line.

The ``openai`` package itself is not imported: any client with the same
``chat.completions.create`` shape can be wrapped.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, AsyncIterator, Iterator, Mapping, Optional, Sequence

from . import SecurityEngine
from ._guard import GuardBlocked, judge

__all__ = ["GuardBlocked", "guarded"]


def guarded(client: Any, engine: Optional[SecurityEngine] = None) -> Any:
    """``client`` (an ``OpenAI`` or ``AsyncOpenAI``) with its chat
    completions scanned in both directions. ``engine`` defaults to one with
    every scanner on."""
    return _GuardedClient(client, engine if engine is not None else SecurityEngine())


class _Passthrough:
    """Forwards every attribute it does not define to the wrapped object."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _GuardedClient(_Passthrough):
    def __init__(self, client: Any, engine: SecurityEngine) -> None:
        super().__init__(client)
        self.chat = _GuardedChat(client.chat, engine)

    def __repr__(self) -> str:
        return f"guarded({self._inner!r})"


class _GuardedChat(_Passthrough):
    def __init__(self, chat: Any, engine: SecurityEngine) -> None:
        super().__init__(chat)
        # The client wraps `create` in decorators; unwrap to see an async def.
        create = inspect.unwrap(chat.completions.create)
        is_async = inspect.iscoroutinefunction(create) or type(chat.completions).__name__.startswith("Async")
        self.completions = (_AsyncCompletions if is_async else _Completions)(chat.completions, engine)


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _with_content(message: Any, content: Any) -> Any:
    if isinstance(message, Mapping):
        return {**message, "content": content}
    return message.model_copy(update={"content": content})


def _scan_message(engine: SecurityEngine, message: Any) -> Any:
    role = _field(message, "role")
    if role == "user":
        scan = engine.analyze_input
    elif role in ("tool", "function"):
        def scan(text: str) -> Any:
            return engine.analyze_context(text, "tool_output")
    else:
        return message
    content = _field(message, "content")
    if isinstance(content, str):
        checked = judge(scan(content), content)
        return message if checked == content else _with_content(message, checked)
    if isinstance(content, list):
        parts = []
        for part in content:
            text = _field(part, "text")
            if _field(part, "type") == "text" and isinstance(text, str):
                checked = judge(scan(text), text)
                part = part if checked == text else _with_content_text(part, checked)
            parts.append(part)
        return _with_content(message, parts)
    return message


def _with_content_text(part: Any, text: str) -> Any:
    if isinstance(part, Mapping):
        return {**part, "text": text}
    return part.model_copy(update={"text": text})


def _scan_request(engine: SecurityEngine, messages: Sequence[Any]) -> tuple[list[Any], Optional[str]]:
    """The messages to send and the system prompt to check answers for."""
    system_prompt = None
    for m in messages:
        content = _field(m, "content")
        if _field(m, "role") in ("system", "developer") and isinstance(content, str):
            system_prompt = content
            break
    return [_scan_message(engine, m) for m in messages], system_prompt


def _check_answer(engine: SecurityEngine, completion: Any, system_prompt: Optional[str]) -> Any:
    for choice in getattr(completion, "choices", None) or []:
        message = getattr(choice, "message", None)
        text = getattr(message, "content", None)
        if message is not None and isinstance(text, str):
            checked = judge(engine.validate_output(text, system_prompt=system_prompt), text)
            if checked != text:
                message.content = checked
    return completion


class _StreamGuard:
    """The per-stream state: each choice's text so far and how much of it
    has been released."""

    def __init__(self, engine: SecurityEngine, system_prompt: Optional[str]) -> None:
        self.engine = engine
        self.system_prompt = system_prompt
        self.text: dict[int, str] = {}
        self.released: dict[int, int] = {}
        self.last: Any = None

    def _release(self, index: int, final: bool) -> Optional[str]:
        """The text of choice `index` to release now, scanned; None when a
        line is still incomplete."""
        text = self.text.get(index, "")
        start = self.released.get(index, 0)
        end = len(text) if final else text.rfind("\n", start) + 1
        if end <= start:
            return None
        analysis = self.engine.validate_output(text[: end], system_prompt=self.system_prompt)
        judge(analysis, text)  # raises on "block"
        segment = text[start:end]
        if analysis.verdict == "sanitize":
            segment = self.engine.sanitize(segment).text
        self.released[index] = end
        return segment

    def process(self, chunk: Any) -> Any:
        """The chunk to hand on in place of `chunk`."""
        self.last = chunk
        for choice in getattr(chunk, "choices", None) or []:
            delta = getattr(choice, "delta", None)
            piece = getattr(delta, "content", None)
            index = getattr(choice, "index", 0)
            if isinstance(piece, str):
                self.text[index] = self.text.get(index, "") + piece
            if delta is None or (piece is None and getattr(choice, "finish_reason", None) is None):
                continue
            released = self._release(index, final=getattr(choice, "finish_reason", None) is not None)
            delta.content = released
        return chunk

    def finish(self) -> list[Any]:
        """Chunks carrying text still held back when the stream ended
        without a finish reason."""
        out = []
        for index in sorted(self.text):
            rest = self._release(index, final=True)
            if rest and self.last is not None:
                chunk = self.last.model_copy(deep=True)
                chunk.choices = [c for c in chunk.choices if getattr(c, "index", 0) == index][:1]
                if chunk.choices:
                    chunk.choices[0].delta.content = rest
                    chunk.choices[0].finish_reason = None
                    out.append(chunk)
        return out


class _GuardedStream(_Passthrough):
    """A `Stream` whose chunks pass through a `_StreamGuard`."""

    def __init__(self, stream: Any, guard: _StreamGuard) -> None:
        super().__init__(stream)
        self._guard = guard

    def __iter__(self) -> Iterator[Any]:
        try:
            for chunk in self._inner:
                yield self._guard.process(chunk)
            yield from self._guard.finish()
        except GuardBlocked:
            self._inner.close()
            raise

    def __enter__(self) -> _GuardedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self._inner.close()


class _AsyncGuardedStream(_Passthrough):
    """An `AsyncStream` whose chunks pass through a `_StreamGuard`, scanned
    in a worker thread."""

    def __init__(self, stream: Any, guard: _StreamGuard) -> None:
        super().__init__(stream)
        self._guard = guard

    async def __aiter__(self) -> AsyncIterator[Any]:
        try:
            async for chunk in self._inner:
                yield await asyncio.to_thread(self._guard.process, chunk)
            for chunk in await asyncio.to_thread(self._guard.finish):
                yield chunk
        except GuardBlocked:
            await self._inner.close()
            raise

    async def __aenter__(self) -> _AsyncGuardedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._inner.close()


class _Completions(_Passthrough):
    def __init__(self, completions: Any, engine: SecurityEngine) -> None:
        super().__init__(completions)
        self._engine = engine

    def create(self, *, messages: Sequence[Any], **kwargs: Any) -> Any:
        """``chat.completions.create`` with the request and the answer scanned."""
        sent, system_prompt = _scan_request(self._engine, messages)
        result = self._inner.create(messages=sent, **kwargs)
        if kwargs.get("stream"):
            return _GuardedStream(result, _StreamGuard(self._engine, system_prompt))
        return _check_answer(self._engine, result, system_prompt)


class _AsyncCompletions(_Passthrough):
    def __init__(self, completions: Any, engine: SecurityEngine) -> None:
        super().__init__(completions)
        self._engine = engine

    async def create(self, *, messages: Sequence[Any], **kwargs: Any) -> Any:
        """``chat.completions.create`` with the request and the answer
        scanned in a worker thread."""
        sent, system_prompt = await asyncio.to_thread(_scan_request, self._engine, messages)
        result = await self._inner.create(messages=sent, **kwargs)
        if kwargs.get("stream"):
            return _AsyncGuardedStream(result, _StreamGuard(self._engine, system_prompt))
        return await asyncio.to_thread(_check_answer, self._engine, result, system_prompt)
