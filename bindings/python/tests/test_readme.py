"""The package README's examples: its `>>>` examples run as doctests, and
its quick-start block runs as a script that must print `block`."""

import doctest
import importlib.util
import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 5
    assert ">>>" not in BLOCKS[0]


def test_quick_start_prints_block():
    out = subprocess.run([sys.executable, "-c", BLOCKS[0]], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "block"
    assert len(BLOCKS[0].strip().splitlines()) == 3


def test_doctest_examples():
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    globs = {}
    examples = 0
    for i, block in enumerate(BLOCKS[1:], start=1):
        if "langchain" in block and importlib.util.find_spec("langchain_core") is None:
            continue  # the LangChain example needs langchain-core (Python >= 3.11)
        if "llama_index" in block and importlib.util.find_spec("llama_index") is None:
            continue  # the LlamaIndex example needs llama-index-core (Python >= 3.10)
        test = parser.get_doctest(block, globs, f"README block {i}", str(README), 0)
        examples += len(test.examples)
        runner.run(test, clear_globs=False)
        # A DocTest runs in a copy of the globals: carry names to the next block.
        globs.update(test.globs)
    failed, attempted = runner.summarize(verbose=False)
    assert attempted == examples > 10
    assert failed == 0, f"{failed} README example(s) failed (see the output above)"
