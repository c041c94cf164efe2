#!/usr/bin/env python3
"""Builds crates/llm-security/data/gazetteer.tsv, the name and place lists
the engine's entity tagger (crates/llm-security/src/ner) uses as features.

Source: the Faker package from PyPI (MIT licence), whose per-locale
providers hold given names, surnames, cities, regions, countries, street
words and company suffixes. The wheel is fetched with `pip download`
(pinned version), read from a temporary directory and never imported into
the running interpreter's site-packages.

Usage: python3 scripts/build-gazetteers.py [--out PATH]
Deterministic: the same Faker version gives the same file byte for byte.
"""

import argparse
import glob
import importlib
import os
import subprocess
import sys
import tempfile
import zipfile

FAKER_VERSION = "40.63.0"
# Entries per kind and locale: Faker's weighted lists are taken in weight
# order, the others in their own order.
TOP_N = 300
LOCALES = {
    "en": ["en_US", "en_GB"],
    "de": ["de_DE", "de_AT", "de_CH"],
    "fr": ["fr_FR"],
    "es": ["es_ES", "es_MX"],
    "pt": ["pt_BR", "pt_PT"],
    "it": ["it_IT"],
    "nl": ["nl_NL"],
    "zh": ["zh_CN"],
    "ja": ["ja_JP"],
    "ru": ["ru_RU"],
}
# kind -> (provider, attribute names)
KINDS = {
    "given": ("person", ["first_names", "first_names_male", "first_names_female"]),
    "surname": ("person", ["last_names"]),
    "city": ("address", ["cities", "city_names", "states", "counties", "regions", "provinces",
                         "prefectures", "estados", "distritos", "departments"]),
    "country": ("address", ["countries"]),
    "street": ("address", ["street_suffixes", "street_suffixes_long", "street_suffixes_short",
                           "street_prefixes"]),
    "company": ("company", ["company_suffixes"]),
}


def entries(value):
    """Names from a Faker list, tuple or weighted dict (by weight)."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: -float(kv[1]) if isinstance(kv[1], (int, float)) else 0)
        names = [k for k, _ in items]
    else:
        names = list(value)
    out = []
    for n in names:
        if isinstance(n, (tuple, list)):
            n = n[-1] if n and isinstance(n[-1], str) else (n[0] if n else "")
        if not isinstance(n, str):
            continue
        n = n.strip().strip(".").strip()
        # Single characters only for CJK (Chinese surnames such as 王).
        cjk = any(ord(c) >= 0x2E80 for c in n)
        if (2 <= len(n) or cjk) and len(n) <= 40 and "{" not in n and "#" not in n and "\t" not in n:
            out.append(n)
    return out


def provider(kind_module, locale):
    try:
        return importlib.import_module(f"faker.providers.{kind_module}.{locale}").Provider
    except ModuleNotFoundError:
        return None


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "crates", "llm-security", "data", "gazetteer.tsv"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", tmp, f"faker=={FAKER_VERSION}"],
            check=True,
        )
        wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
        root = os.path.join(tmp, "x")
        with zipfile.ZipFile(wheel) as z:
            z.extractall(root)
        licence = open(glob.glob(os.path.join(root, "*.dist-info", "licenses", "LICENSE*"))[0]).read()
        if "Permission is hereby granted, free of charge" not in licence:
            sys.exit("Faker's licence is no longer the MIT text this file's header states")
        sys.path.insert(0, root)
        rows = set()
        for lang, locales in LOCALES.items():
            for kind, (module, attrs) in KINDS.items():
                for locale in locales:
                    p = provider(module, locale)
                    if p is None:
                        continue
                    got = []
                    for a in attrs:
                        got.extend(entries(getattr(p, a, []) or []))
                    seen = []
                    for g in got:
                        if g not in seen:
                            seen.append(g)
                    for g in seen[:TOP_N]:
                        rows.add((kind, lang, g))
            # World cities with coordinates (geo provider), once.
        geo = importlib.import_module("faker.providers.geo").Provider
        for lat, lon, place, cc, tz in geo.land_coords:
            if 2 <= len(place) <= 40:
                rows.add(("city", "world", place))
    lines = [
        "# Gazetteer for the entity tagger: kind<TAB>language<TAB>entry.",
        f"# Built by scripts/build-gazetteers.py from Faker {FAKER_VERSION} (PyPI, MIT licence,",
        "# Copyright (c) 2012 Daniele Faraglia; the licence permits use, copying and redistribution).",
        f"# Locales: {', '.join(l for ls in LOCALES.values() for l in ls)}; at most {TOP_N} entries per kind and locale,",
        "# plus the geo provider's world cities. Do not edit by hand: rerun the script.",
    ]
    lines += ["\t".join(r) for r in sorted(rows)]
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}: {len(rows)} entries")


if __name__ == "__main__":
    main()
