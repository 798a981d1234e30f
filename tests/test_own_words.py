"""maxwhisper's Python must be its own text, not a transcription of upstream.

tests/data/upstream_line_hashes.txt holds truncated SHA-256 hashes of every
stripped line of >= 40 characters in openai-whisper 20250625 and
faster-whisper 1.2.1 (regenerate with scripts/upstream_fingerprints.py write).

Allowance: a few lines must stay identical because they are the drop-in
contract (a public signature with openai-whisper's parameter names, a result
dict key list), so the target is at most ALLOWED_PER_MODULE shared lines per
module. The rewrite of issue 12 is not finished: the modules listed in
NOT_YET_REWRITTEN are held at their measured count (a ratchet: the number may
only go down); remove an entry once its module is rewritten.
"""

import importlib.util
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location(
    "upstream_fingerprints", HERE.parent / "scripts" / "upstream_fingerprints.py")
fp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fp)

ALLOWED_PER_MODULE = 3
# measured 2026-12-02 before any rewrite (shared long lines, distinct)
NOT_YET_REWRITTEN = {
    "cli.py": 3,  # 8 before; help texts still to rewrite
    "decoding.py": 53,
    "timing.py": 32,
    "tokenizer.py": 31,
    "transcribe.py": 31,
    "writers.py": 39,
}


def test_fingerprints_are_hashes_of_a_real_source():
    hashes = fp.load_fingerprints()
    assert len(hashes) > 1000
    assert all(len(h) == 16 and int(h, 16) >= 0 for h in hashes)


def test_counter_detects_a_copied_line(tmp_path):
    # a line taken from no upstream file is not counted; one hashed in is
    line = "x = compute_something_quite_long(argument_one, argument_two)"
    path = tmp_path / "m.py"
    path.write_text(line + "\n")
    assert fp.long_line_hashes(path) & fp.load_fingerprints() == set()
    assert len(fp.long_line_hashes(path) & fp.long_line_hashes(path)) == 1


def test_shared_lines_within_allowance():
    over = {}
    for name, (shared, _long, _lines) in fp.shared_per_module(fp.load_fingerprints()).items():
        limit = NOT_YET_REWRITTEN.get(name, ALLOWED_PER_MODULE)
        if shared > limit:
            over[name] = (shared, limit)
    assert not over, f"modules sharing more long lines with upstream than allowed: {over}"
