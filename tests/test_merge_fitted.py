"""training.merge_fitted: the held-out avatars stay last, and only planes of one decoder are joined."""

import json

import pytest
import torch

from rodin_core.decoder import DecoderConfig, TriplaneDecoder
from rodin_core.io_utils import save_tensors_atomic, write_json_atomic
from training import merge_fitted
from training.fit_report import load_fitted


def fitted_folder(root, ids, decoder, fill):
    root.mkdir(parents=True)
    planes = torch.stack([torch.full((3, 8, 4, 4), fill + i) for i in range(len(ids))])
    save_tensors_atomic(root / "planes.safetensors", {"planes": planes})
    save_tensors_atomic(root / "decoder.safetensors", decoder.state_dict())
    meta = {
        "format": "rodin-fitted/1",
        "ids": ids,
        "data": "unused",
        "decoder": DecoderConfig().to_dict(),
        "resolution": 4,
        "channels": 8,
        "holdout_views": [1],
        "frozen_decoder": None,
    }
    write_json_atomic(root / "fitted.json", meta)
    return root


def data_folder(root, ids):
    for name in ids:
        (root / name).mkdir(parents=True)
        (root / name / "transforms.json").write_text("{}")
    return root


def test_merge_keeps_holdout_last_and_planes_with_their_ids(tmp_path):
    torch.manual_seed(0)
    decoder = TriplaneDecoder(DecoderConfig())
    old = [f"avatar_{i:06d}" for i in range(5)]
    new = [f"avatar_{i:06d}" for i in range(5, 8)]
    a = fitted_folder(tmp_path / "a", old, decoder, 0.0)
    b = fitted_folder(tmp_path / "b", new, decoder, 100.0)
    data = data_folder(tmp_path / "data", old + new)
    out = tmp_path / "merged"
    args = [str(a), str(b), "--out", str(out), "--data", str(data), "--holdout", "2"]
    assert merge_fitted.main(args) == 0
    meta, planes, merged_decoder = load_fitted(out)
    assert meta["ids"] == old[:3] + new + old[3:]
    # Each plane travels with its id: avatar k of folder a holds k, avatar k of b holds 100 + k.
    expected = [0.0, 1.0, 2.0, 100.0, 101.0, 102.0, 3.0, 4.0]
    assert planes[:, 0, 0, 0, 0].tolist() == expected
    assert all(torch.equal(v, decoder.state_dict()[k]) for k, v in merged_decoder.state_dict().items())
    assert json.loads((out / "fitted" / "fitted.json").read_text())["merged_from"] == [str(a), str(b)]


def test_merge_refuses_another_decoder_duplicates_and_missing_records(tmp_path):
    torch.manual_seed(0)
    decoder = TriplaneDecoder(DecoderConfig())
    a = fitted_folder(tmp_path / "a", ["avatar_000000", "avatar_000001", "avatar_000002"], decoder, 0.0)
    other = TriplaneDecoder(DecoderConfig())  # another random init: another feature space
    b = fitted_folder(tmp_path / "b", ["avatar_000003"], other, 0.0)
    c = fitted_folder(tmp_path / "c", ["avatar_000001"], decoder, 0.0)
    d = fitted_folder(tmp_path / "d", ["avatar_000009"], decoder, 0.0)
    data = data_folder(tmp_path / "data", [f"avatar_{i:06d}" for i in range(4)])
    out = ["--out", str(tmp_path / "m"), "--data", str(data), "--holdout", "1"]
    with pytest.raises(SystemExit, match="another decoder.*--frozen-decoder"):
        merge_fitted.main([str(a), str(b), *out])
    with pytest.raises(SystemExit, match="more than one folder.*avatar_000001"):
        merge_fitted.main([str(a), str(c), *out])
    with pytest.raises(SystemExit, match="lacks 1 of the merged records.*avatar_000009"):
        merge_fitted.main([str(a), str(d), *out])
    with pytest.raises(SystemExit, match="--holdout 3 must be under the 3 avatars"):
        merge_fitted.main(
            [str(a), str(d), "--out", str(tmp_path / "m"), "--data", str(data), "--holdout", "3"]
        )
    assert not (tmp_path / "m" / "fitted" / "fitted.json").exists()
