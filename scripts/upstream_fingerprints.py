"""Count source lines maxwhisper shares with openai-whisper / faster-whisper.

Only hashes of the upstream lines are stored (tests/data/upstream_line_hashes.txt),
never their text, so the test can run without the upstream packages installed.

    python scripts/upstream_fingerprints.py write /tmp/ow/openai_whisper-20250625 /tmp/fw/faster_whisper
    python scripts/upstream_fingerprints.py report
"""

import hashlib
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
FINGERPRINTS = ROOT / "tests" / "data" / "upstream_line_hashes.txt"
PACKAGE = ROOT / "python" / "maxwhisper_kernels"
MIN_CHARS = 40  # short lines (imports, `return x`) match by accident, not by copying


def long_line_hashes(path):
    """Hashes of the stripped lines of at least MIN_CHARS characters in one file."""
    out = set()
    for line in pathlib.Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if len(line) >= MIN_CHARS:
            out.add(hashlib.sha256(line.encode()).hexdigest()[:16])
    return out


def long_line_count(path):
    text = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    return sum(1 for line in text if len(line.strip()) >= MIN_CHARS)


def load_fingerprints():
    return set(FINGERPRINTS.read_text().split())


def shared_per_module(fingerprints):
    """{module file name: (shared long lines, long lines, all lines)}."""
    result = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = str(path.relative_to(PACKAGE))
        shared = len(long_line_hashes(path) & fingerprints)
        lines = path.read_text(encoding="utf-8").count("\n")
        result[name] = (shared, long_line_count(path), lines)
    return result


def main(argv):
    if argv[:1] == ["write"] and len(argv) > 1:
        hashes = set()
        for root in argv[1:]:
            for path in pathlib.Path(root).rglob("*.py"):
                hashes |= long_line_hashes(path)
        FINGERPRINTS.write_text("\n".join(sorted(hashes)) + "\n")
        print(f"{len(hashes)} hashes -> {FINGERPRINTS}")
    elif argv[:1] == ["report"]:
        for name, (shared, long_, lines) in shared_per_module(load_fingerprints()).items():
            print(f"{name:20s} shared {shared:4d} / long {long_:4d}   lines {lines:4d}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
