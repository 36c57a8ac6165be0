"""Build the Rodin Avatars extension zip for one platform.

    python build_addon.py --platform linux-x64                       # dist/rodin_avatars-0.1.0-linux-x64.zip
    python build_addon.py --platform windows-x64 --wheels-from W/    # offline: take dependency wheels from W/

Steps: stage rodin_blender/ as the extension's root package; build rodin_core (with the embedded weights
bundle) as a wheel; collect the dependency wheels for the platform (pip download, or --wheels-from); write the
staged manifest's `wheels` and `platforms`; run Blender's own extension `build` and `validate` (a `blender`
binary when one is on PATH, else the copy of the tool inside the bpy module).
numpy is not bundled: Blender ships its own.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DEPENDENCIES = [
    "torch==2.13.0",
    "safetensors>=0.4",
    "PyMCubes>=0.1.6",
    "xatlas>=0.0.9",
    "trimesh>=4.0",
    "scipy>=1.11",
    "fast-simplification>=0.1.7",
    "Pillow>=10",
]
PLATFORMS = {  # Blender platform name -> pip platform tags
    "linux-x64": ["manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "linux_x86_64"],
    "windows-x64": ["win_amd64"],
    "macos-arm64": ["macosx_11_0_arm64", "macosx_12_0_arm64", "macosx_13_0_arm64", "macosx_14_0_arm64"],
}


class BuildError(RuntimeError):
    pass


def run(cmd: list[str], what: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(
            f"{what} failed ({' '.join(cmd[:4])} ...):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return proc.stdout


def stage_addon(staging: Path) -> None:
    for path in sorted((ROOT / "rodin_blender").glob("*.py")):
        shutil.copy2(path, staging / path.name)


def build_core_wheel(wheels: Path, weights: Path, work: Path) -> Path:
    """rodin_core alone (no training code) as a wheel, with the weights bundle as package data."""
    sys.path.insert(0, str(ROOT))
    from rodin_core import __version__
    from rodin_core.bundle import load_bundle

    if not weights.is_file() or not weights.with_suffix(".safetensors").is_file():
        raise BuildError(
            f"weights bundle {weights} (+ .safetensors) not found: train and export one "
            "(`python -m training.pipeline --preset tiny`) or pass --weights"
        )
    load_bundle(weights)  # refuses to ship a bundle that does not load
    src = work / "rodin_core_src"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(
        ROOT / "rodin_core", src / "rodin_core", ignore=shutil.ignore_patterns("__pycache__", "weights")
    )
    (src / "rodin_core" / "weights").mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy2(weights.with_suffix(suffix), src / "rodin_core" / "weights" / f"rodin_tiny{suffix}")
    (src / "pyproject.toml").write_text(
        f"""[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "rodin-core"
version = "{__version__}"
requires-python = ">=3.11"

[tool.setuptools]
packages = ["rodin_core"]

[tool.setuptools.package-data]
rodin_core = ["weights/*.json", "weights/*.safetensors"]
"""
    )
    before = set(wheels.glob("rodin_core-*.whl"))
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(src),
        ],
        "building the rodin_core wheel",
    )
    built = sorted(set(wheels.glob("rodin_core-*.whl")) - before) or sorted(wheels.glob("rodin_core-*.whl"))
    if not built:
        raise BuildError("pip wheel reported success but wrote no rodin_core wheel")
    return built[-1]


def collect_dependencies(wheels: Path, platform: str, wheels_from: Path | None) -> list[Path]:
    if wheels_from is not None:
        found = []
        for req in DEPENDENCIES:
            name = req.split("=")[0].split(">")[0].replace("-", "_").lower()
            hits = [
                p
                for p in wheels_from.glob("*.whl")
                if p.name.lower().replace("-", "_").startswith(name + "-")
            ]
            hits = [p for p in hits if _matches_platform(p.name, platform)]
            if not hits:
                raise BuildError(f"no wheel for {req} ({platform}) in {wheels_from}; download it there first")
            target = wheels / hits[-1].name
            shutil.copy2(hits[-1], target)
            found.append(target)
        return found
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "-d",
        str(wheels),
    ]
    for tag in PLATFORMS[platform]:
        cmd += ["--platform", tag]
    for req in DEPENDENCIES:
        try:
            run([*cmd, req], f"downloading {req}")
        except BuildError as exc:
            raise BuildError(
                f"cannot get a {platform} wheel for {req} (offline? pass --wheels-from DIR holding it):\n{exc}"
            ) from exc
    return sorted(p for p in wheels.glob("*.whl") if not p.name.startswith("rodin_core-"))


def _matches_platform(name: str, platform: str) -> bool:
    return name.endswith("-none-any.whl") or any(tag in name for tag in PLATFORMS[platform])


def write_manifest(staging: Path, wheels: list[Path], platform: str) -> None:
    text = (ROOT / "blender_manifest.toml").read_text()
    tomllib.loads(text)  # the template must parse before we add to it
    listed = ",\n  ".join(f'"./wheels/{w.name}"' for w in sorted(wheels))
    text = text.replace(
        "[permissions]", f'platforms = ["{platform}"]\nwheels = [\n  {listed},\n]\n\n[permissions]', 1
    )
    tomllib.loads(text)
    (staging / "blender_manifest.toml").write_text(text)


def extension_tool() -> list[str]:
    blender = shutil.which("blender")
    if blender:
        return [blender, "--factory-startup", "--command", "extension"]
    # The bpy wheel carries Blender's scripts next to the module: site-packages/bpy/<version>/scripts/...
    pattern = os.path.join("bpy", "*", "scripts", "addons_core", "bl_pkg", "cli", "blender_ext.py")
    hits = sorted(h for entry in sys.path if entry for h in glob.glob(os.path.join(entry, pattern)))
    if not hits:
        raise BuildError(
            "no `blender` binary on PATH and no bpy module (>= 4.2) with its extension tool; "
            "install one of them (pip install bpy==5.0.1)"
        )
    return [sys.executable, hits[0]]


def build(platform: str, out: Path, weights: Path, wheels_from: Path | None) -> Path:
    if platform not in PLATFORMS:
        raise BuildError(f"unknown platform {platform!r}; choose one of {', '.join(PLATFORMS)}")
    work = ROOT / "build" / f"extension-{platform}"
    shutil.rmtree(work, ignore_errors=True)
    staging = work / "rodin_avatars"
    wheels = staging / "wheels"
    wheels.mkdir(parents=True)
    stage_addon(staging)
    core = build_core_wheel(wheels, weights, work)  # first: a missing bundle is the commonest problem
    deps = collect_dependencies(wheels, platform, wheels_from)
    write_manifest(staging, [*deps, core], platform)
    out.mkdir(parents=True, exist_ok=True)
    version = tomllib.loads((ROOT / "blender_manifest.toml").read_text())["version"]
    zip_path = out / f"rodin_avatars-{version}-{platform}.zip"
    tool = extension_tool()
    run([*tool, "build", "--source-dir", str(staging), "--output-filepath", str(zip_path)], "extension build")
    run([*tool, "validate", str(zip_path)], "extension validate")
    return zip_path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--platform", default="linux-x64", choices=sorted(PLATFORMS))
    p.add_argument("--out", default=str(ROOT / "dist"))
    p.add_argument(
        "--weights",
        default=str(ROOT / "rodin_core" / "weights" / "rodin_tiny.json"),
        help="weights bundle .json to embed",
    )
    p.add_argument("--wheels-from", help="folder of dependency wheels for offline builds")
    args = p.parse_args(argv)
    try:
        path = build(
            args.platform,
            Path(args.out),
            Path(args.weights),
            Path(args.wheels_from) if args.wheels_from else None,
        )
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"built {path} ({path.stat().st_size / 2**20:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
