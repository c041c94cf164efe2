"""A LlamaIndex node postprocessor that scans retrieved nodes for planted
instructions (indirect prompt injection) before the model reads them.

    from llm_security.llamaindex import SecurityNodePostprocessor

    query_engine = index.as_query_engine(
        node_postprocessors=[SecurityNodePostprocessor(policy="drop")]
    )

Every retrieved node's text, as the model will see it (metadata included),
is analysed with ``analyze_context(text, "document")``, the engine's mode
for untrusted documents: instructions addressed to an AI reader, hidden
markup and exfiltration requests, and Unicode attacks. (Secrets and
personal data in documents are not what the context analysis reports.)
The nodes of one query are analysed as one batch, with the GIL released.

What happens to a node follows its verdict:

- "allow": passed on unchanged.
- "sanitize" (hidden Unicode: zero-width or tag characters, …): passed on
  as a copy with the engine's sanitized text (invisible characters
  stripped).
- "block": up to ``policy``:

  - ``"drop"`` (default): the node is left out.
  - ``"sanitize"``: passed on as a copy with every sentence that carries a
    finding (other than a Unicode attack, which sanitizing handles)
    replaced by ``[removed by llm-security]`` (a sentence ends at ``.``,
    ``!`` or ``?`` before white space, or at a line break). The copy
    is analysed again: still "block" (the finding was in the node's
    metadata, say), it is left out; "sanitize", it is sanitized as above.
  - ``"raise"``: :class:`~llm_security.GuardBlocked` (stage "context"),
    so the query fails instead of answering from a partial context.

Nodes are never changed in place: the index keeps its own copies.
``llama-index-core`` is needed (``pip install llm-security[llamaindex]``).
"""

from __future__ import annotations

import re
from typing import Any, List, Literal, Optional

from llama_index.core.bridge.pydantic import Field
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from . import Analysis, SecurityEngine
from ._guard import GuardBlocked

__all__ = ["GuardBlocked", "SecurityNodePostprocessor"]

REMOVED = "[removed by llm-security]"

# A sentence ends after ., ! or ? followed by white space, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


class SecurityNodePostprocessor(BaseNodePostprocessor):
    """Scans retrieved nodes with ``analyze_context(text, "document")``;
    ``policy`` ("drop", "sanitize" or "raise") decides what happens to a
    node whose verdict is "block". ``engine`` defaults to one with every
    scanner on."""

    policy: Literal["drop", "sanitize", "raise"] = Field(
        default="drop", description='What to do with a node whose verdict is "block": drop, sanitize or raise.'
    )
    engine: SecurityEngine = Field(description="The engine the nodes are analysed with.", exclude=True)

    def __init__(
        self,
        engine: Optional[SecurityEngine] = None,
        policy: Literal["drop", "sanitize", "raise"] = "drop",
        **kwargs: Any,
    ) -> None:
        engine = engine if engine is not None else SecurityEngine()
        super().__init__(engine=engine, policy=policy, **kwargs)  # type: ignore[call-arg]  # pydantic fields

    @classmethod
    def class_name(cls) -> str:
        return "SecurityNodePostprocessor"

    def _postprocess_nodes(
        self,
        nodes: List[NodeWithScore],
        query_bundle: Optional[QueryBundle] = None,
    ) -> List[NodeWithScore]:
        texts = [_llm_view(n) for n in nodes]
        analyses = self.engine.analyze_context_batch(texts, "document")
        kept: List[NodeWithScore] = []
        for node, analysis in zip(nodes, analyses):
            out = self._apply(node, analysis)
            if out is not None:
                kept.append(out)
        return kept

    def _apply(self, node: NodeWithScore, analysis: Analysis) -> Optional[NodeWithScore]:
        """The node to pass on for this analysis of it, or None to leave it out."""
        if analysis.verdict == "allow":
            return node
        if analysis.verdict == "block":
            if self.policy == "raise":
                raise GuardBlocked(analysis)
            if self.policy == "drop":
                return None
            text = node.node.get_content(metadata_mode=MetadataMode.NONE)
            node = _with_text(node, _cut_sentences(text, self._spans_in_text(node, text, analysis)))
            analysis = self.engine.analyze_context(_llm_view(node), "document")
            if analysis.verdict == "block":
                return None
            if analysis.verdict == "allow":
                return node
        return _with_text(node, self._sanitized_text(node, analysis))

    def _sanitized_text(self, node: NodeWithScore, analysis: Analysis) -> str:
        """The node's text as the engine sanitizes it."""
        text = node.node.get_content(metadata_mode=MetadataMode.NONE)
        if _llm_view(node) != text:
            # The analysis covered the metadata too: sanitize the text alone.
            analysis = self.engine.analyze_context(text, "document")
        return analysis.sanitized if analysis.sanitized is not None else text

    @staticmethod
    def _spans_in_text(node: NodeWithScore, text: str, analysis: Analysis) -> list[tuple[int, int]]:
        """The spans of the findings to cut, moved from the analysed view (metadata, then
        the text) into the node's text; spans outside the text are left
        out."""
        offset = _llm_view(node).find(text) if text else -1
        if offset < 0:
            return []
        spans = []
        for t in analysis.threats:
            if t.type == "unicode_attack":
                continue  # left to the engine's sanitizing (invisible characters stripped)
            start, end = t.span[0] - offset, t.span[1] - offset
            if end > 0 and start < len(text):
                spans.append((max(start, 0), min(end, len(text))))
        return spans


def _llm_view(node: NodeWithScore) -> str:
    """The node's content as a response synthesizer hands it to the model."""
    return node.node.get_content(metadata_mode=MetadataMode.LLM)


def _with_text(node: NodeWithScore, text: str) -> NodeWithScore:
    """A copy of `node` with its text replaced; the original is untouched."""
    inner = node.node.model_copy(deep=True)
    inner.set_content(text)
    return NodeWithScore(node=inner, score=node.score)


def _cut_sentences(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with every sentence that overlaps a span replaced by REMOVED
    (consecutive removed sentences become one marker)."""
    sentences = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        sentences.append((start, m.start(), m.group()))
        start = m.end()
    sentences.append((start, len(text), ""))
    out = []
    removed_last = False
    for s, e, sep in sentences:
        if any(a < e and b > s for a, b in spans):
            if not removed_last:
                out.append(REMOVED + (sep if sep else ""))
            removed_last = True
        else:
            out.append(text[s:e] + sep)
            removed_last = False
    return "".join(out)
