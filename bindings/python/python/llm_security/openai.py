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
- Streams (``stream=True``): each choice's text goes through the engine's
  :class:`~llm_security.OutputStream`. Each chunk's text is pushed once; a
  chunk carries the text released by then, which lags what arrived by up
  to ``hold_back_bytes`` (512 by default) and is never cut inside a
  finding, so a secret split across chunks arrives as its placeholder.
  The chunk with the finish reason carries the rest. A "block" verdict
  stops the stream with GuardBlocked (``analysis`` None, ``threats`` set)
  before any of the offending text is released. ``stream_options``
  (``hold_back_bytes``, ``min_scan_bytes``, ``max_held_bytes``) go to
  :meth:`~llm_security.SecurityEngine.output_stream`.

The ``openai`` package itself is not imported: any client with the same
``chat.completions.create`` shape can be wrapped.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, AsyncIterator, Iterator, Mapping, Optional, Sequence, TypedDict

from . import Analysis, OutputStream, SecurityEngine, StreamStep, Threat
from ._guard import GuardBlocked, judge

__all__ = ["GuardBlocked", "StreamOptions", "guarded"]


class StreamOptions(TypedDict, total=False):
    """Keyword arguments of :meth:`SecurityEngine.output_stream`."""

    hold_back_bytes: int
    min_scan_bytes: int
    max_held_bytes: int


def guarded(
    client: Any,
    engine: Optional[SecurityEngine] = None,
    *,
    stream_options: Optional[StreamOptions] = None,
) -> Any:
    """``client`` (an ``OpenAI`` or ``AsyncOpenAI``) with its chat
    completions scanned in both directions. ``engine`` defaults to one with
    every scanner on. ``stream_options`` are keyword arguments of
    :meth:`SecurityEngine.output_stream` for streamed answers, e.g.
    ``{"hold_back_bytes": 256}``; a bad one raises here."""
    engine = engine if engine is not None else SecurityEngine()
    options: StreamOptions = stream_options.copy() if stream_options else {}
    engine.output_stream(**options)  # checks the options now, not at the first stream
    return _GuardedClient(client, _Settings(engine, options))


class _Settings:
    """The engine and the options of its streams."""

    def __init__(self, engine: SecurityEngine, stream_options: StreamOptions) -> None:
        self.engine = engine
        self.stream_options = stream_options


class _Passthrough:
    """Forwards every attribute it does not define to the wrapped object."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _GuardedClient(_Passthrough):
    def __init__(self, client: Any, settings: _Settings) -> None:
        super().__init__(client)
        self.chat = _GuardedChat(client.chat, settings)

    def __repr__(self) -> str:
        return f"guarded({self._inner!r})"


class _GuardedChat(_Passthrough):
    def __init__(self, chat: Any, settings: _Settings) -> None:
        super().__init__(chat)
        # The client wraps `create` in decorators; unwrap to see an async def.
        create = inspect.unwrap(chat.completions.create)
        is_async = inspect.iscoroutinefunction(create) or type(chat.completions).__name__.startswith("Async")
        self.completions = (_AsyncCompletions if is_async else _Completions)(chat.completions, settings)


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _with_content(message: Any, content: Any) -> Any:
    if isinstance(message, Mapping):
        return {**message, "content": content}
    return message.model_copy(update={"content": content})


def _scan_message(engine: SecurityEngine, message: Any) -> Any:
    role = _field(message, "role")
    if role == "user":
        context = None
    elif role in ("tool", "function"):
        context = "tool_output"
    else:
        return message

    def scan(text: str) -> Analysis:
        return engine.analyze_input(text, context)

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
    """The per-stream state: one OutputStream per choice."""

    def __init__(self, settings: _Settings, system_prompt: Optional[str]) -> None:
        self.settings = settings
        self.system_prompt = system_prompt
        self.streams: dict[int, OutputStream] = {}
        self.threats: dict[int, list[Threat]] = {}
        self.finished: set[int] = set()
        self.last: Any = None

    def _stream(self, index: int) -> OutputStream:
        stream = self.streams.get(index)
        if stream is None:
            stream = self.settings.engine.output_stream(self.system_prompt, **self.settings.stream_options)
            self.streams[index] = stream
            self.threats[index] = []
        return stream

    def _released(self, index: int, step: StreamStep) -> str:
        """The text `step` releases; GuardBlocked when the choice is blocked."""
        self.threats[index].extend(step.threats)
        if step.blocked:
            raise GuardBlocked(None, stage="output", threats=self.threats[index])
        return step.text

    def process(self, chunk: Any) -> Any:
        """The chunk to hand on in place of `chunk`."""
        self.last = chunk
        for choice in getattr(chunk, "choices", None) or []:
            delta = getattr(choice, "delta", None)
            if delta is None:
                continue
            index = getattr(choice, "index", 0)
            piece = getattr(delta, "content", None)
            out = ""
            if isinstance(piece, str) and piece:
                out += self._released(index, self._stream(index).push(piece))
            if getattr(choice, "finish_reason", None) is not None and index not in self.finished:
                self.finished.add(index)
                out += self._released(index, self._stream(index).finish())
            if isinstance(piece, str) or out:
                delta.content = out or None
        return chunk

    def finish(self) -> list[Any]:
        """Chunks carrying text still held back when the stream ended
        without a finish reason."""
        out = []
        for index in sorted(self.streams):
            if index in self.finished:
                continue
            self.finished.add(index)
            rest = self._released(index, self.streams[index].finish())
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
    def __init__(self, completions: Any, settings: _Settings) -> None:
        super().__init__(completions)
        self._settings = settings
        self._engine = settings.engine

    def create(self, *, messages: Sequence[Any], **kwargs: Any) -> Any:
        """``chat.completions.create`` with the request and the answer scanned."""
        sent, system_prompt = _scan_request(self._engine, messages)
        result = self._inner.create(messages=sent, **kwargs)
        if kwargs.get("stream"):
            return _GuardedStream(result, _StreamGuard(self._settings, system_prompt))
        return _check_answer(self._engine, result, system_prompt)


class _AsyncCompletions(_Passthrough):
    def __init__(self, completions: Any, settings: _Settings) -> None:
        super().__init__(completions)
        self._settings = settings
        self._engine = settings.engine

    async def create(self, *, messages: Sequence[Any], **kwargs: Any) -> Any:
        """``chat.completions.create`` with the request and the answer
        scanned in a worker thread."""
        sent, system_prompt = await asyncio.to_thread(_scan_request, self._engine, messages)
        result = await self._inner.create(messages=sent, **kwargs)
        if kwargs.get("stream"):
            return _AsyncGuardedStream(result, _StreamGuard(self._settings, system_prompt))
        return await asyncio.to_thread(_check_answer, self._engine, result, system_prompt)
