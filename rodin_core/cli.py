"""The `rodin` command: generate avatars from the embedded model (or another weights bundle).

    rodin generate --seed 7 --out out/                      one avatar: out/avatar_seed7.glb + .json + _preview.png
    rodin generate --seed 7 --count 4 --format obj          seeds 7, 8, 9, 10 as OBJ + MTL + PNG
    rodin generate --image portrait.png --guidance 3        follow a frontal portrait
    rodin generate --text "a woman with long red hair"      follow a description (words it does not know are listed)
    rodin info                                              what the installed model is

Everything runs offline on the CPU by default (--device cuda to use a GPU). Meshes are in metres, Z up,
the face looking towards -Y (Blender's axes); GLB/OBJ files carry the usual Y-up conversion, which
Blender's importers undo.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PIL import Image


def _generate(args: argparse.Namespace) -> int:
    import torch

    from .export import write_avatar
    from .pipeline import AvatarPipeline, GenerationSettings, image_to_uint8
    from .preview import grid

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        from tqdm import tqdm
    except ImportError:  # progress bars are a nicety
        tqdm = None
    pipe = AvatarPipeline.from_bundle(args.weights, device=args.device, text_model=args.text_model)
    settings = GenerationSettings(
        guidance=args.guidance,
        sampler=args.sampler,
        steps=args.steps,
        mesh_resolution=args.mesh_resolution,
        texture_size=args.texture_size,
        max_faces=args.max_faces or None,
        image_guidance=args.image_guidance,
        draw_glasses=args.draw_glasses,
    )
    settings.validate()
    out = Path(args.out)
    for seed in range(args.seed, args.seed + args.count):
        started = time.perf_counter()
        bar = (
            tqdm(total=100, desc=f"seed {seed}", bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}")
            if tqdm
            else None
        )

        def progress(stage, done, total, bar=bar):
            if bar is not None:
                bar.set_postfix_str(stage)
                weights = {
                    "latent": 0,
                    "portrait": 2,
                    "base diffusion": 5,
                    "upsampling": 45,
                    "drawing glasses": 55,
                    "mesh": 60,
                    "texture": 75,
                    "done": 100,
                }
                span = {"base diffusion": 40, "upsampling": 10, "drawing glasses": 5}.get(stage, 0)
                bar.n = int(weights.get(stage, 0) + span * done / max(total, 1))
                bar.refresh()

        avatar = pipe.generate(
            seed=seed, image=args.image, text=args.text, settings=settings, progress=progress
        )
        if bar is not None:
            bar.close()
        if avatar.metadata.get("unknown_words"):
            print(
                f"warning: the model does not know these words and left them out: "
                f"{', '.join(avatar.metadata['unknown_words'])}",
                file=sys.stderr,
            )
        if (avatar.metadata.get("portrait_read") or {}).get("note"):
            print(f"note: {avatar.metadata['portrait_read']['note']}", file=sys.stderr)
        if avatar.metadata.get("text_model") == "sentence":
            new = pipe.unfamiliar_words(args.text)
            print(
                "note: the prompt was read by the sentence-embedding model"
                + (f"; no training caption uses: {', '.join(new)}" if new else ""),
                file=sys.stderr,
            )
        name = f"{args.name}_seed{seed}"
        paths = write_avatar(avatar, out, name, args.format)
        views = pipe.render(
            avatar.planes, azimuths=(0.0, 45.0, 90.0, 180.0), elevation=10.0, size=args.preview_size
        )
        preview = out / f"{name}_preview.png"
        Image.fromarray(grid(views, columns=4)).save(preview)
        written = [*paths, preview]
        # What the prompt was read as, before the 3D model drew it.
        if avatar.metadata.get("portrait") == "drawn":
            written.append(out / f"{name}_portrait.png")
            Image.fromarray(image_to_uint8(avatar.portrait.permute(1, 2, 0))).save(written[-1])
        print(
            f"seed {seed}: {len(avatar.vertices)} vertices, {len(avatar.faces)} faces, "
            f"{time.perf_counter() - started:.1f} s -> {', '.join(str(p) for p in written)}"
        )
    return 0


def _info(args: argparse.Namespace) -> int:
    from .bundle import DEFAULT_BUNDLE, load_bundle

    config, tensors = load_bundle(args.weights)
    params = sum(t.numel() for t in tensors.values())
    print(f"bundle: {args.weights or DEFAULT_BUNDLE}")
    print(f"version: {config.get('version')}  made by: {config.get('made_by')}")
    print(
        f"parameters: {params / 1e6:.2f} M; base tri-plane {config['base']['resolution']}^2, "
        f"upsampler: {config['upsampler']['resolution'] if config.get('upsampler') else 'none'}"
    )
    if config.get("portrait"):
        size = config["portrait"]["config"]["size"]
        steps = config.get("made_by", {}).get("portrait_steps")
        print(f"portrait model: {size} px portraits for text prompts ({steps} training steps)")
    if config.get("sentence"):
        from .sentence import sentence_model_missing

        problem = sentence_model_missing()
        print(f"sentence-model head: yes ({'ready' if problem is None else problem})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rodin", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser(
        "generate",
        help="generate textured avatar meshes",
        description="Generate avatars: a GLB (or OBJ), a JSON sidecar with seed and settings, and a preview PNG.",
    )
    gen.add_argument("--seed", type=int, default=0, help="the avatar's seed (same seed, same avatar)")
    gen.add_argument("--count", type=int, default=1, help="how many avatars, with consecutive seeds")
    gen.add_argument("--out", default="out", help="output folder (created if needed)")
    gen.add_argument("--name", default="avatar", help="file name prefix")
    gen.add_argument("--format", choices=("glb", "obj"), default="glb")
    gen.add_argument("--image", help="frontal portrait (PNG/JPG) the avatar should follow")
    gen.add_argument(
        "--image-guidance",
        type=float,
        default=1.0,
        help="how strongly the avatar's front is pulled towards the --image, or for --text towards the portrait the "
        "model draws for the prompt (written as NAME_portrait.png; pulled twice as hard, at most 10); 0 = the "
        "latent code alone; lower it for portraits not framed like the generator's frontal views",
    )
    gen.add_argument("--text", help='a description, e.g. "an old man with a grey beard and a cap"')
    gen.add_argument(
        "--draw-glasses",
        action="store_true",
        help="when the --text prompt gives the avatar glasses, draw the generator's frame on in 3D (the model draws "
        "them faintly; ~26 s more on 2 cores; it read worse on the text evaluation, docs/results.md)",
    )
    gen.add_argument(
        "--text-model",
        choices=("auto", "words", "sentence"),
        default="auto",
        help="which encoder reads --text: words (the model's own vocabulary), sentence (the offline "
        "sentence-embedding model, if installed), auto (sentence only for words the vocabulary lacks)",
    )
    gen.add_argument(
        "--guidance",
        type=float,
        help="classifier-free guidance scale (1 = none; default 3 for --text, 2 otherwise)",
    )
    gen.add_argument("--sampler", choices=("dpmpp_2m", "ddim", "ddpm"), default="dpmpp_2m")
    gen.add_argument("--steps", type=int, default=20, help="diffusion steps (DPM-Solver++ needs ~20)")
    gen.add_argument("--mesh-resolution", type=int, default=128, help="density grid size per axis (64..512)")
    gen.add_argument("--texture-size", type=int, default=512, help="baked texture width and height")
    gen.add_argument(
        "--max-faces",
        type=int,
        default=20000,
        help="decimate to this many faces (0 = keep all; more is slower to unwrap)",
    )
    gen.add_argument("--preview-size", type=int, default=256)
    gen.add_argument("--weights", help="a weights bundle .json (default: the embedded model)")
    gen.add_argument("--device", default="cpu", help="cpu or cuda")
    gen.add_argument("--threads", type=int, help="CPU threads for torch")
    gen.set_defaults(func=_generate)
    info = sub.add_parser("info", help="describe the installed model")
    info.add_argument("--weights")
    info.set_defaults(func=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "count", 1) < 1:
        print("error: --count must be at least 1", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:  # bad input: say what is wrong, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
