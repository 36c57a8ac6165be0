"""The on-disk data set: folders per record written atomically, the data-set index, sharding. No bpy here.

Format (docs/CONVENTIONS.md): DATASET/dataset.json + DATASET/avatar_NNNNNN/{attributes.json, transforms.json,
images/NNN.png, depth/NNN.npy, mesh.ply, variants/FAMILY/images/NNN.png}. A record is assembled in
`.avatar_NNNNNN.tmp-PID/` and renamed into place only when complete, so a folder named `avatar_*` is always a
whole record.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rodin_core.io_utils import read_json, write_json_atomic

from .attributes import FIRST_LOOKS_THAT_SHOW, LOOKS, VARIABLE_FAMILIES

FORMAT = "rodin-avatars/1"
INDEX_NAME = "dataset.json"
RECORD_RE = re.compile(r"^avatar_(\d{6,})$")
TEMP_RE = re.compile(r"^\.avatar_(\d{6,})\.tmp-\d+$")
# The index while a shard writes it (rodin_core.io_utils' temp name): another shard starting in the same folder.
INDEX_TEMP_RE = re.compile(rf"^\.{re.escape(INDEX_NAME)}\..+\.tmp$")
REQUIRED_FILES = ("attributes.json", "transforms.json", "mesh.ply")


@dataclass(frozen=True)
class DatasetSettings:
    seed: int
    views: int
    resolution: int
    depth: bool
    variants: tuple[str, ...] = ()
    looks: int = 1

    def validate(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"--count must be at least 1; got {count}")
        if self.views < 1:
            raise ValueError(f"--views must be at least 1 (the frontal view); got {self.views}")
        if not 16 <= self.resolution <= 2048:
            raise ValueError(f"--res must be between 16 and 2048 pixels; got {self.resolution}")
        if self.looks not in LOOKS:
            raise ValueError(f"--looks must be one of {', '.join(map(str, LOOKS))}; got {self.looks}")
        for family in self.variants:
            if family not in VARIABLE_FAMILIES:
                raise ValueError(
                    f"--variants {family}: this family cannot change alone; choose from {', '.join(VARIABLE_FAMILIES)}"
                )
            if self.looks < FIRST_LOOKS_THAT_SHOW.get(family, 1):
                raise ValueError(
                    f"--variants {family}: looks {self.looks} draws every {family} alike; "
                    f"add --looks {FIRST_LOOKS_THAT_SHOW[family]}"
                )
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"--variants names a family twice: {' '.join(self.variants)}")

    def as_dict(self) -> dict:
        """The settings as the index stores them; a data set without variants, of looks 1, keeps the index it always
        had."""
        settings = asdict(self)
        if self.variants:
            settings["variants"] = list(self.variants)
        else:
            del settings["variants"]
        if self.looks == 1:
            del settings["looks"]
        return settings


def record_id(index: int) -> str:
    return f"avatar_{index:06d}"


def record_seed(dataset_seed: int, index: int) -> int:
    """The avatar seed of record `index`: distinct across data sets with different seeds."""
    return dataset_seed * 1_000_003 + index


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match:
        raise ValueError(f"--shard must look like I/N (e.g. 0/4); got {text!r}")
    index, total = int(match.group(1)), int(match.group(2))
    if total < 1 or not 0 <= index < total:
        raise ValueError(f"--shard {text}: need 0 <= I < N and N >= 1")
    return index, total


def shard_indices(count: int, shard: tuple[int, int]) -> list[int]:
    index, total = shard
    return [i for i in range(count) if i % total == index]


def is_complete(folder: Path) -> bool:
    return folder.is_dir() and all((folder / name).is_file() for name in REQUIRED_FILES)


class DatasetWriter:
    def __init__(self, root: Path, settings: DatasetSettings) -> None:
        self.root = Path(root)
        self.settings = settings

    def prepare(self) -> None:
        """Creates the folder or checks that an existing one is a Rodin data set with the same settings."""
        index_path = self.root / INDEX_NAME
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"output {self.root} exists and is not a folder")
        if self.root.is_dir() and not index_path.is_file():
            # Shards started side by side race to write the index; their temp files are no foreign content.
            foreign = [
                e for e in self.root.iterdir() if not (INDEX_TEMP_RE.match(e.name) or TEMP_RE.match(e.name))
            ]
            if foreign and not index_path.is_file():
                raise FileExistsError(
                    f"output folder {self.root} is not empty and holds no {INDEX_NAME}: it is not a Rodin data set. "
                    "Choose an empty or new folder (or an earlier Rodin data set folder to resume it)."
                )
        if index_path.is_file():
            index = read_json(index_path, "data set index")
            if index.get("format") != FORMAT:
                raise ValueError(f"{index_path} has format {index.get('format')!r}, expected {FORMAT!r}")
            theirs = index.get("settings", {})
            ours = self.settings.as_dict()
            if theirs != ours:
                raise ValueError(
                    f"{self.root} was generated with settings {theirs}, but this run asks for {ours}; "
                    "resume with the same --seed/--views/--res/--depth/--variants/--looks or write to another folder"
                )
        self.root.mkdir(parents=True, exist_ok=True)
        if not index_path.is_file():
            write_json_atomic(
                index_path, {"format": FORMAT, "settings": self.settings.as_dict(), "count": 0, "records": []}
            )

    def clean_stale(self, indices: list[int]) -> int:
        """Removes temp folders a killed run left for these indices (only ours: other shards may be writing)."""
        wanted = set(indices)
        removed = 0
        for entry in self.root.iterdir():
            match = TEMP_RE.match(entry.name)
            if match and int(match.group(1)) in wanted:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed

    def pending(self, indices: list[int]) -> list[int]:
        return [i for i in indices if not is_complete(self.root / record_id(i))]

    def begin(self, index: int) -> Path:
        temp = self.root / f".{record_id(index)}.tmp-{os.getpid()}"
        if temp.exists():
            shutil.rmtree(temp)
        (temp / "images").mkdir(parents=True)
        if self.settings.depth:
            (temp / "depth").mkdir()
        for family in self.settings.variants:
            (temp / "variants" / family / "images").mkdir(parents=True)
        return temp

    def commit(self, index: int, temp: Path) -> Path:
        final = self.root / record_id(index)
        if final.exists():  # an incomplete leftover under the final name (should not happen, but never merge)
            shutil.rmtree(final)
        os.replace(temp, final)
        return final

    def write_index(self) -> dict:
        records = []
        for entry in sorted(self.root.iterdir()):
            if RECORD_RE.match(entry.name) and is_complete(entry):
                attrs = read_json(entry / "attributes.json", "record attributes")
                records.append({"id": entry.name, "seed": attrs["seed"], "caption": attrs["caption"]})
        index = {
            "format": FORMAT,
            "settings": self.settings.as_dict(),
            "count": len(records),
            "records": records,
        }
        write_json_atomic(self.root / INDEX_NAME, index)
        return index


def write_ply(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Binary little-endian PLY of a triangle mesh (readable by trimesh, Blender, MeshLab)."""
    vertices = np.ascontiguousarray(vertices, dtype="<f4")
    faces = np.ascontiguousarray(faces, dtype="<i4")
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    face_records = np.empty(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    face_records["n"] = 3
    face_records["v"] = faces
    with open(path, "wb") as handle:
        handle.write(header.encode("ascii"))
        handle.write(vertices.tobytes())
        handle.write(face_records.tobytes())
