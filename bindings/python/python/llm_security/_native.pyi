"""Type stubs of the native module ``llm_security._native`` (Rust, PyO3).

Import from ``llm_security``, which re-exports everything here and adds the
asyncio helpers to :class:`SecurityEngine`.
"""

from os import PathLike
from typing import Any, Final, Literal, Mapping, Optional, Sequence, Tuple, Union, final

from typing_extensions import disjoint_base

__all__ = [
    "Analysis",
    "CONTEXT_KINDS",
    "ConfigError",
    "InputTooLarge",
    "LlmSecurityError",
    "OutputStream",
    "Redaction",
    "Sanitized",
    "SecurityConfig",
    "SecurityEngine",
    "StreamStep",
    "THREAT_TYPES",
    "Threat",
    "__version__",
]
__version__: Final[str]

CONTEXT_KINDS: Final[list[str]]
"""The kinds ``analyze_context`` accepts: "document", "email", "webpage"
("web_page" is accepted too), "tool_output", "code", "chat", "calendar",
"search_result", "other"."""

THREAT_TYPES: Final[list[str]]
"""Every threat type the engine reports, e.g. "prompt_injection"."""

_Verdict = Literal["allow", "sanitize", "block"]
_Severity = Literal["low", "medium", "high", "critical"]
_Stage = Literal["input", "output", "context"]
_Span = Tuple[int, int]
_JsonSchema = Union[Mapping[str, Any], str, bool]

class LlmSecurityError(Exception):
    """Base class of every error llm_security raises."""

class InputTooLarge(LlmSecurityError):
    """The text is longer than the config's ``max_input_bytes`` (UTF-8 bytes);
    nothing was scanned. In a batch, ``index`` is the position of the text
    and the message starts with ``texts[i]:``."""

    length: int
    """The text's length in UTF-8 bytes."""
    max_bytes: int
    """The configured maximum."""

class ConfigError(LlmSecurityError):
    """A configuration value or file is invalid: an unknown key (named in the
    message, with its path, e.g. ``threat_model.jailbreak.dan_atacks``), a
    value of the wrong type or out of range, or a file that cannot be read."""

@final
class SecurityConfig:
    """The engine's configuration.

    Keyword arguments are the keys of the TOML/YAML/JSON config files the
    Rust engine reads, nested tables as dicts; keys left out keep their
    defaults (every scanner on)::

        SecurityConfig(max_input_bytes=65536,
                       jailbreak_detection=False,
                       output={"pii_types": {"ip_address": False}},
                       policy={"prompt_injection": {"action": "block"}})

    Raises ConfigError for an unknown key (naming it), a wrong type or a
    value out of range. Instances are immutable and compare by value.
    """

    def __new__(cls, **kwargs: Any) -> SecurityConfig: ...
    @staticmethod
    def from_file(path: Union[str, PathLike[str]]) -> SecurityConfig:
        """Reads a ``.toml``, ``.yaml``/``.yml`` or ``.json`` config file (the
        files the Rust ``SecurityConfig::from_path`` reads). Raises
        ConfigError when it cannot be read or is invalid."""
    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> SecurityConfig:
        """The config from a dict shaped like the config files."""
    def to_dict(self) -> dict[str, Any]:
        """Every setting, defaults included, shaped like the config files:
        ``SecurityConfig.from_dict(c.to_dict()) == c``."""
    @property
    def prompt_injection_detection(self) -> bool:
        """Run the prompt-injection rules on inputs."""
    @property
    def jailbreak_detection(self) -> bool:
        """Run the jailbreak rules on inputs."""
    @property
    def unicode_attack_detection(self) -> bool:
        """Report Unicode attacks."""
    @property
    def output_validation(self) -> bool:
        """Run the output validators in validate_output."""
    @property
    def max_input_bytes(self) -> int:
        """Longest text accepted, in UTF-8 bytes."""
    def __eq__(self, other: object, /) -> bool: ...

@final
class Threat:
    """One finding of one scanner. Immutable."""

    @property
    def type(self) -> str:
        """The threat type, one of THREAT_TYPES (e.g. "prompt_injection",
        "secret_leak")."""
    @property
    def category(self) -> str:
        """The technique within the type, e.g. "direct_injection", "email"."""
    @property
    def severity(self) -> _Severity:
        """How bad it is."""
    @property
    def confidence(self) -> float:
        """How sure the scanner is, in [0, 1]."""
    @property
    def span(self) -> _Span:
        """(start, end) in Python string indices: ``text[start:end]`` is the
        text that carries the threat."""
    @property
    def byte_span(self) -> _Span:
        """(start, end) in UTF-8 bytes, as the Rust engine reports it."""
    @property
    def evidence(self) -> str:
        """A short human-readable reason; never the full matched secret."""
    @property
    def scanner(self) -> str:
        """The id of the scanner that raised it."""
    @property
    def rule(self) -> Optional[str]:
        """The rule inside the scanner, when it has several."""
    @property
    def decoded_from(self) -> Optional[str]:
        """Set when the match was found only after decoding ("base64",
        "hex", "url", "rot13", ...)."""
    @property
    def metadata(self) -> dict[str, str]:
        """Scanner-specific facts, e.g. ``{"cwe": "CWE-78"}`` for unsafe
        code or ``{"signal": "compliance"}`` for a harmful response; empty
        when the scanner adds none."""
    def to_dict(self) -> dict[str, Any]:
        """The threat as a dict of JSON types (spans as lists)."""

@final
class Redaction:
    """One placeholder the sanitizer put in place of a secret or PII value."""

    @property
    def placeholder(self) -> str:
        """The placeholder, e.g. "[REDACTED_EMAIL_1]"."""
    @property
    def original(self) -> Optional[str]:
        """The value it replaced; only when the config's sanitize.reversible
        is on. Never shown by repr()."""
    @property
    def span(self) -> _Span:
        """Where the value was in the original text (Python string indices)."""
    @property
    def byte_span(self) -> _Span:
        """The same, in UTF-8 bytes."""
    def to_dict(self) -> dict[str, Any]:
        """The redaction as a dict of JSON types."""

@final
class Analysis:
    """The result of analyze_input, analyze_context or validate_output.
    Immutable."""

    @property
    def is_secure(self) -> bool:
        """True when the verdict is "allow": the text may pass unchanged."""
    @property
    def verdict(self) -> _Verdict:
        """What the policy decided."""
    @property
    def confidence(self) -> float:
        """Noisy-OR of the threat confidences, in [0, 1] (0 with none)."""
    @property
    def sanitized(self) -> Optional[str]:
        """The sanitized text when the verdict is "sanitize" (or the config's
        sanitize.always is on); None otherwise."""
    @property
    def threats(self) -> Tuple[Threat, ...]:
        """Every threat found, ordered by span start, including those below
        the policy's thresholds (which leave the verdict at "allow")."""
    @property
    def redactions(self) -> Tuple[Redaction, ...]:
        """The placeholders used in ``sanitized``."""
    @property
    def stage(self) -> _Stage:
        """Which side of the model the text was on."""
    @property
    def context(self) -> Optional[str]:
        """For analyze_context: the kind of content analysed."""
    @property
    def refusal(self) -> Optional[_Span]:
        """For completions: where the model refused, if it did."""
    @property
    def max_severity(self) -> Optional[_Severity]:
        """The highest severity among the threats, or None."""
    @property
    def analysis_time(self) -> float:
        """Wall time of the scan, in seconds."""
    @property
    def timings(self) -> list[Tuple[str, int]]:
        """(scanner id, nanoseconds) per scanner, in the order they ran."""
    def has(self, threat_type: str) -> bool:
        """True when any threat has this type (e.g. "jailbreak")."""
    def to_dict(self) -> dict[str, Any]:
        """The analysis as a dict of JSON types; ``json.dumps`` takes it as
        is."""

@final
class Sanitized:
    """Text after sanitize(): secrets and personal data replaced by typed
    placeholders, invisible characters stripped. ``str()`` is the text."""

    @property
    def text(self) -> str:
        """The sanitized text."""
    @property
    def redactions(self) -> Tuple[Redaction, ...]:
        """One entry per redacted span, in text order."""
    def to_dict(self) -> dict[str, Any]:
        """The result as a dict of JSON types."""

@final
class StreamStep:
    """What one :meth:`OutputStream.push` or :meth:`OutputStream.finish`
    gives back. Immutable."""

    @property
    def text(self) -> str:
        """Text now safe to release (possibly empty), with secrets and
        personal data replaced by placeholders where the policy sanitizes."""
    @property
    def threats(self) -> Tuple[Threat, ...]:
        """The threats first reported in this step. Their spans index the
        whole completion as received (every chunk pushed so far, joined)."""
    @property
    def blocked(self) -> bool:
        """True once the verdict is "block": this step released nothing and
        no later one will."""
    def to_dict(self) -> dict[str, Any]:
        """The step as a dict of JSON types."""

@final
class OutputStream:
    """A completion validated chunk by chunk; made by
    :meth:`SecurityEngine.output_stream`. ``push`` each chunk as it arrives
    and release the ``text`` it returns, then call ``finish`` once. Each
    chunk is pushed once; scans release the GIL."""

    def push(self, chunk: str) -> StreamStep:
        """Appends the next chunk. Returns the text now safe to release and
        the threats first seen. After a block, or after finish(), chunks
        are ignored."""
    def finish(self) -> StreamStep:
        """Scans and releases whatever is still held back. Call once, when
        the completion ends."""
    @property
    def verdict(self) -> _Verdict:
        """The verdict over every threat seen so far."""
    @property
    def blocked(self) -> bool:
        """True once the verdict is "block"."""
    @property
    def stats(self) -> dict[str, int]:
        """Counters of the stream's work: "chunks" pushed, "scans" run,
        "bytes_in" received, "bytes_scanned" over all scans, "bytes_out"
        released."""

@disjoint_base
class SecurityEngine:
    """The native engine; use ``llm_security.SecurityEngine``, which adds the
    asyncio helpers."""

    def __new__(cls, config: Optional[SecurityConfig] = None) -> SecurityEngine:
        """Builds the engine (every scanner on when config is None). Raises
        ConfigError when the config is invalid."""
    @property
    def config(self) -> SecurityConfig:
        """The config the engine was built from."""
    def analyze_input(self, text: str, context: Optional[str] = None) -> Analysis:
        """Analyses a prompt: prompt injection, jailbreaks, Unicode attacks,
        secrets and personal data. With ``context`` (one of CONTEXT_KINDS)
        the text is untrusted content the model will read, analysed as
        ``analyze_context(text, context)`` does (the server's ``analyze``
        route with its ``context`` field); another value raises ValueError.
        Raises InputTooLarge over max_input_bytes."""
    def analyze_input_batch(self, texts: Sequence[str], context: Optional[str] = None) -> list[Analysis]:
        """analyze_input over a list (all of one ``context``), in order,
        with the GIL released for the whole batch."""
    def analyze_context(self, text: str, kind: str) -> Analysis:
        """Analyses untrusted content the model will read (a document, an
        e-mail, a web page, a tool result) for instructions planted for an
        AI reader. ``kind`` is one of CONTEXT_KINDS; another raises
        ValueError."""
    def analyze_context_batch(self, texts: Sequence[str], kind: str) -> list[Analysis]:
        """analyze_context over a list of texts of one kind."""
    def validate_output(
        self,
        text: str,
        system_prompt: Optional[str] = None,
        expected_format: Optional[Literal["json", "xml"]] = None,
        json_schema: Optional[_JsonSchema] = None,
        prompt: Optional[str] = None,
    ) -> Analysis:
        """Validates a completion: secrets, personal data, exfiltration
        links, active markup, canary tokens and system-prompt leakage,
        Unicode attacks, refusals, and the expected format or JSON Schema
        (a dict or its JSON text; a schema implies JSON)."""
    def validate_output_batch(
        self,
        texts: Sequence[str],
        system_prompt: Optional[str] = None,
        expected_format: Optional[Literal["json", "xml"]] = None,
        json_schema: Optional[_JsonSchema] = None,
        prompt: Optional[str] = None,
    ) -> list[Analysis]:
        """validate_output over a list of completions sharing one context."""
    def sanitize(self, text: str) -> Sanitized:
        """Redacts secrets and personal data and strips invisible
        characters, whatever the policy says."""
    def sanitize_batch(self, texts: Sequence[str]) -> list[Sanitized]:
        """sanitize over a list."""
    def issue_canary(self) -> str:
        """A fresh canary token to plant in a system prompt; validate_output
        reports a completion containing it as a "system_prompt_leak"
        (category "canary_token"). Engines whose configs share
        output.canary_secret recognise each other's tokens."""
    def output_stream(
        self,
        system_prompt: Optional[str] = None,
        prompt: Optional[str] = None,
        *,
        hold_back_bytes: int = 512,
        min_scan_bytes: int = 128,
        max_held_bytes: int = 65536,
    ) -> OutputStream:
        """A stream validating a completion that arrives in chunks (a
        streamed model answer). Text is released once it is
        ``hold_back_bytes`` from the end of what has arrived, never in the
        middle of a finding, so a secret split across chunks is redacted
        whole; a scan runs once ``min_scan_bytes`` of new text have arrived,
        over that text, the held-back text and 64 bytes before it.
        ``max_held_bytes`` bounds the text held while a finding keeps
        growing. ``system_prompt`` and ``prompt`` as for validate_output;
        formats and JSON Schemas do not apply to streams. Raises ValueError
        when min_scan_bytes is 0 or max_held_bytes is not larger than
        hold_back_bytes."""
