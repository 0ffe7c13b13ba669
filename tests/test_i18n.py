"""The UI's strings: every key the code asks for exists in English and Chinese, and no key is left unused."""

import json
import re

from conftest import ROOT


def code_files():
    skip = {".venv", "tests", "runs", "data", "artifacts", "tools", "benchmarks"}
    return [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]


def test_every_key_used_is_defined_in_both_languages_and_every_key_is_used():
    strings = json.loads((ROOT / "assets" / "i18n.json").read_text(encoding="utf-8"))
    assert set(strings) == {"en", "zh"} and set(strings["en"]) == set(strings["zh"])
    assert all(text.strip() for lang in strings.values() for text in lang.values())
    code = "\n".join(p.read_text(encoding="utf-8") for p in code_files())
    used = set(re.findall(r'\bT\(\s*"([a-z0-9_]+)"\s*\)', code))  # static text
    used |= set(re.findall(r'\bsay\((?:\s*\w+,)?\s*"([a-z0-9_]+)"', code))  # a handler's text
    assert used and not used - set(strings["en"]), sorted(used - set(strings["en"]))
    # a key may also be named where it is chosen (Guard.notice returns one): any quoted literal counts as a use
    named = set(re.findall(r'"([a-z0-9_]+)"', code))
    assert not set(strings["en"]) - named, sorted(set(strings["en"]) - named)
    # the Chinese side is Chinese: at least one CJK character in each string that has words
    english_only = [k for k, v in strings["zh"].items() if re.search("[A-Za-z]{3}", v)
                    and not re.search("[\u4e00-\u9fff]", v)]
    assert not english_only, english_only
