"""The data layer: root resolution, layouts, conversions, bad input, subsets, the decode cache,
downloads.

Synthetic datasets are made by the tests themselves: every image of class k is filled with a colour
that encodes k, so a test can read each image's true class back from its pixels and prove that no
label was silently shifted.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alexlib import _io, data
from alexlib.data import DataError, balanced_indices, load, open_split

CLASSES = ["apple", "bear", "cloud"]


def colour_of(k: int) -> tuple[int, int, int]:
    return (40 + 80 * k, 200 - 60 * k, 90)


def class_of(image: torch.Tensor) -> int:
    """Read the class back from an image made by ``make_image`` (its mean colour)."""
    mean = image.float().mean(dim=(1, 2))
    distances = [
        float(((mean - torch.tensor(colour_of(k), dtype=torch.float)) ** 2).sum()) for k in range(3)
    ]
    return int(np.argmin(distances))


def make_image(k: int, mode: str = "RGB", size=(20, 16), fmt: str = "JPEG") -> bytes:
    im = Image.new("RGB", size, colour_of(k))
    if (
        mode == "L"
    ):  # greyscale: all channels equal, so the class colour is not recoverable; use grey levels
        im = Image.new("L", size, 60 + 50 * k)
    elif mode != "RGB":
        im = im.convert(mode)
    buffer = io.BytesIO()
    im.save(buffer, format=fmt, quality=95)
    return buffer.getvalue()


def make_folder(root: Path, splits=("train", "val"), per_class=4, classes=CLASSES) -> Path:
    for split in splits:
        for k, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                (folder / f"{name}_{i}.jpg").write_bytes(make_image(k))
    return root


def zip_folder(folder: Path, zip_path: Path, prefix: str = "", only: str | None = None) -> Path:
    with zipfile.ZipFile(zip_path, "w") as z:
        for p in sorted(folder.rglob("*")):
            rel = p.relative_to(folder).as_posix()
            if only and not rel.startswith(only):
                continue
            if p.is_file():
                z.write(p, prefix + rel)
    return zip_path


# ----------------------------------------------------------------------------------- data root


def test_data_root_prefers_argument_then_environment_then_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ALEXLIB_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("ALEXLIB_CACHE", raising=False)
    assert data.data_root(tmp_path / "arg") == (tmp_path / "arg", "argument")
    assert data.data_root()[0] == tmp_path / "env"
    monkeypatch.delenv("ALEXLIB_DATA")
    assert data.data_root()[0] == tmp_path / "xdg" / "alexlib" / "data"
    monkeypatch.setenv("ALEXLIB_CACHE", str(tmp_path / "mine"))
    assert data.cache_dir() == tmp_path / "mine"


# ----------------------------------------------------------------------------------- layouts


def test_image_folder_labels_match_pixels(tmp_path):
    root = make_folder(tmp_path / "toy")
    train = load(str(root), "train", progress=False)
    assert train.images.shape == (12, 3, 16, 20) and train.images.dtype == torch.uint8
    assert train.classes == CLASSES
    assert [class_of(im) for im in train.images] == train.labels.tolist()
    val = load(str(root), "val", progress=False)
    assert [class_of(im) for im in val.images] == val.labels.tolist()


def test_zip_layouts_split_zips_and_enclosing_folder(tmp_path):
    root = make_folder(tmp_path / "toy")
    # a dataset whose training split comes in two zips, each holding some classes (like
    # imagenette-224)
    ds = tmp_path / "data" / "imagenette-224"
    ds.mkdir(parents=True)
    zip_folder(root, ds / "train-1.zip", only="train/apple")
    with zipfile.ZipFile(ds / "train-2.zip", "w") as z:
        for name in ("bear", "cloud"):
            for p in sorted((root / "train" / name).iterdir()):
                z.write(p, f"train/{name}/{p.name}")
    zip_folder(root, ds / "val.zip", only="val")
    train = load("imagenette", "train", root=tmp_path / "data", progress=False)
    assert train.class_ids == CLASSES and len(train) == 12
    assert [class_of(im) for im in train.images] == train.labels.tolist()
    # a zip of one enclosing folder with class folders inside and no split
    flat = zip_folder(root / "train", tmp_path / "flat.zip", prefix="photos/")
    listing = open_split(str(flat), "all")
    assert listing.class_ids == CLASSES and len(listing) == 12
    assert [class_of(listing.decode(i)) for i in range(len(listing))] == listing.labels.tolist()


def test_val_labels_follow_the_training_classes(tmp_path):
    root = make_folder(tmp_path / "toy")
    # val lacks the first class: its labels must still index the training class list
    for p in (root / "val" / "apple").iterdir():
        p.unlink()
    (root / "val" / "apple").rmdir()
    val = load(str(root), "val", progress=False)
    assert val.classes == CLASSES
    assert sorted(set(val.labels.tolist())) == [1, 2]
    assert [class_of(im) for im in val.images] == val.labels.tolist()


def test_greyscale_cmyk_rgba_and_palette_become_rgb(tmp_path):
    cases = {
        "grey": ("L", "JPEG"),
        "cmyk": ("CMYK", "JPEG"),
        "rgba": ("RGBA", "PNG"),
        "palette": ("P", "PNG"),
    }
    for name, (mode, fmt) in cases.items():
        folder = tmp_path / "mixed" / name
        folder.mkdir(parents=True)
        (folder / f"x.{fmt.lower()}").write_bytes(make_image(1, mode=mode, fmt=fmt))
    images = load(str(tmp_path / "mixed"), "all", progress=False)
    assert images.images.shape == (4, 3, 16, 20)
    by_class = dict(zip(images.classes, images.images))
    grey = by_class["grey"].float()
    assert torch.allclose(grey[0], grey[1]) and torch.allclose(
        grey[1], grey[2]
    )  # channel replicated
    assert abs(grey.mean().item() - 110) < 3
    for name in ("cmyk", "rgba", "palette"):
        assert class_of(by_class[name]) == 1, name  # colour preserved through the conversion


def test_different_sizes_need_a_size_and_are_centre_cropped(tmp_path):
    folder = tmp_path / "sizes" / "a"
    folder.mkdir(parents=True)
    (folder / "wide.jpg").write_bytes(make_image(0, size=(60, 30)))
    (folder / "tall.jpg").write_bytes(make_image(0, size=(30, 50)))
    with pytest.raises(DataError, match="differ in size.*size="):
        load(str(tmp_path / "sizes"), "all", progress=False, cache=False)
    images = load(str(tmp_path / "sizes"), "all", size=24, progress=False, cache=False)
    assert images.images.shape == (2, 3, 24, 24)


# ----------------------------------------------------------------------------------- bad input


def test_corrupt_and_truncated_images_name_the_file(tmp_path):
    root = make_folder(tmp_path / "toy", splits=("train",), per_class=2)
    (root / "train" / "bear" / "broken.jpg").write_bytes(b"this is not a jpeg at all")
    with pytest.raises(DataError, match=r"broken\.jpg.*corrupt"):
        load(str(root), "train", progress=False, cache=False)
    (root / "train" / "bear" / "broken.jpg").unlink()
    whole = make_image(1, size=(64, 64))
    (root / "train" / "bear" / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"cut\.jpg"):
        load(str(root), "train", progress=False, cache=False)


def test_truncated_zip_says_so(tmp_path):
    root = make_folder(tmp_path / "toy", splits=("train",))
    good = zip_folder(root, tmp_path / "good.zip").read_bytes()
    bad = tmp_path / "bad.zip"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        open_split(str(bad), "train")


def test_empty_class_folder_is_refused(tmp_path):
    root = make_folder(tmp_path / "toy", splits=("train",))
    (root / "train" / "ant").mkdir()  # sorts first: would shift every label by one
    with pytest.raises(DataError, match=r"\['ant'\].*hold no images"):
        open_split(str(root), "train")


def test_images_without_class_folders_are_refused(tmp_path):
    split = tmp_path / "flat" / "train"
    split.mkdir(parents=True)
    for i in range(3):
        (split / f"{i}.jpg").write_bytes(make_image(0))
    with pytest.raises(DataError, match="ImageFolder layout"):
        open_split(str(tmp_path / "flat"), "train")


def test_val_class_unknown_to_train_is_refused(tmp_path):
    root = make_folder(tmp_path / "toy")
    (root / "val" / "dragon").mkdir()
    (root / "val" / "dragon" / "d.jpg").write_bytes(make_image(0))
    with pytest.raises(DataError, match="dragon.*training split does not have"):
        open_split(str(root), "val")


def test_missing_dataset_message_lists_places_and_fixes(tmp_path, monkeypatch):
    monkeypatch.delenv("ALEXLIB_DATA", raising=False)
    with pytest.raises(DataError) as err:
        open_split("imagenette", "train", root=tmp_path)
    message = str(err.value)
    assert "'imagenette'" in message and str(tmp_path) in message
    for place in ("imagenette-224", "imagenette2-320", "imagenette2-160"):
        assert str(tmp_path / place) in message
    assert "download=True" in message and "ALEXLIB_DATA" in message


def test_unknown_name_and_missing_path(tmp_path):
    with pytest.raises(DataError, match="neither a known dataset"):
        open_split(str(tmp_path / "nothing-here"))


# ----------------------------------------------------------------------------------- subsets and
# cache


def test_balanced_indices_are_balanced_and_seeded():
    labels = torch.arange(10).repeat_interleave(30)[
        torch.randperm(300, generator=torch.Generator().manual_seed(1))
    ]
    a = balanced_indices(labels, 7, seed=3)
    assert torch.equal(torch.bincount(labels[a]), torch.full((10,), 7))
    assert torch.equal(a, balanced_indices(labels, 7, seed=3))
    assert not torch.equal(a, balanced_indices(labels, 7, seed=4))
    assert len(a.unique()) == len(a)
    with pytest.raises(ValueError):
        balanced_indices(labels, 0)


def test_decode_cache_is_used_and_a_damaged_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXLIB_CACHE", str(tmp_path / "cache"))
    root = make_folder(tmp_path / "toy", splits=("train",), per_class=6)
    first = load(str(root), "train", per_class=2, seed=5, progress=False)
    assert torch.equal(torch.bincount(first.labels), torch.full((3,), 2))

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache holds this subset")

    monkeypatch.setattr(data, "decode_image", no_decoding)
    second = load(str(root), "train", per_class=2, seed=5, progress=False)
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    monkeypatch.undo()
    monkeypatch.setenv("ALEXLIB_CACHE", str(tmp_path / "cache"))
    (cached,) = (tmp_path / "cache" / "decoded").glob("*.pt")
    cached.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable cache"):
        third = load(str(root), "train", per_class=2, seed=5, progress=False)
    assert torch.equal(first.images, third.images)


# ----------------------------------------------------------------------------------- torchvision
# format and download


def _fake_cifar_tarball(folder: Path) -> tuple[Path, dict]:
    """A tiny CIFAR-10 in torchvision's official format (pickled batches), as a .tar.gz."""
    rng = np.random.default_rng(0)
    batches = folder.parent / "unpacked" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    names = [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ]
    md5 = {}
    for i, name in enumerate(names):
        labels = [(i + j) % 10 for j in range(4)]
        pixels = np.stack([np.full(3072, 20 * lab, dtype=np.uint8) for lab in labels])
        pixels[:, :5] = rng.integers(0, 255, (4, 5))
        (batches / name).write_bytes(pickle.dumps({"data": pixels, "labels": labels}))
    classes = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    (batches / "batches.meta").write_bytes(pickle.dumps({"label_names": classes}))
    for name in names + ["batches.meta"]:
        md5[name] = hashlib.md5((batches / name).read_bytes()).hexdigest()
    tarball = folder / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(batches, arcname="cifar-10-batches-py")
    md5["tarball"] = hashlib.md5(tarball.read_bytes()).hexdigest()
    return tarball, md5


@pytest.fixture
def local_server(tmp_path, http_server):
    """An HTTP server on 127.0.0.1 serving ``tmp_path/server`` (stands in for the dataset's
    host): ``(folder, url)``."""
    folder = tmp_path / "server"
    folder.mkdir()
    return folder, http_server(folder)


def test_download_through_torchvision_from_a_local_server(tmp_path, monkeypatch, local_server):
    from torchvision.datasets import CIFAR10

    folder, url = local_server
    tarball, md5 = _fake_cifar_tarball(folder)
    monkeypatch.setattr(CIFAR10, "url", url + tarball.name)
    monkeypatch.setattr(CIFAR10, "tgz_md5", md5["tarball"])
    monkeypatch.setattr(
        CIFAR10, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)]
    )
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(
        CIFAR10,
        "meta",
        {"filename": "batches.meta", "key": "label_names", "md5": md5["batches.meta"]},
    )
    root = tmp_path / "root"
    with pytest.raises(DataError, match="not found"):
        open_split("cifar10", "train", root=root)
    train = load("cifar10", "train", root=root, download=True, progress=False)
    assert len(train) == 20 and train.images.shape[1:] == (3, 32, 32)
    assert train.classes[0] == "airplane"
    # pixel value 20*label everywhere but the first 5 bytes of the red plane
    assert torch.equal(train.images[:, 2, 10, 10].long(), 20 * train.labels)
    test = load("cifar10", "val", root=root, progress=False)  # "val" finds CIFAR-10's test split
    assert test.split == "test" and len(test) == 4
    assert [row for row in data.survey(root) if row["name"] == "cifar10"][0]["splits"] == {
        "train": 20,
        "test": 4,
    }


def test_failed_download_explains_both_fixes(tmp_path, monkeypatch, local_server):
    from torchvision.datasets import CIFAR10

    monkeypatch.setattr(CIFAR10, "url", local_server[1] + "no-such-file.tar.gz")  # HTTP 404
    with pytest.raises(DataError) as err:
        open_split("cifar10", "train", root=tmp_path / "root", download=True)
    assert "downloading cifar10" in str(err.value) and "ALEXLIB_DATA" in str(err.value)


def _fake_sample_repository(folder: Path) -> dict[int, tuple[int, int]]:
    """A stand-in for the sample photos' repository in ``folder``: a gallery.md with 1000 classes
    (wnid n1000000k, name "class k" written class_k) and the photo of every 10th class, class k
    coloured ``colour_of(k % 3)``. Returns each kept class's photo size (width, height)."""
    rows, sizes = [], {}
    for k in range(1000):
        file = f"n{10000000 + k}_class_{k}.JPEG"
        rows.append(f"| ![class_{k}]({file}) <br/> **class_{k} ({k})** <br/> `n{10000000 + k}` |")
        if k % 10 == 0:
            # a large photo (reduced to a 256-pixel shorter side), a small one (kept), one
            # greyscale (made RGB)
            size = (600, 400) if k == 0 else (120, 90) if k == 10 else (300, 260)
            sizes[k] = size
            mode = "L" if k == 20 else "RGB"
            (folder / file).write_bytes(make_image(k % 3, mode, size=size))
    (folder / "gallery.md").write_text("# Gallery\n\n" + "\n".join(rows) + "\n")
    return sizes


def test_imagenet_samples_download_from_a_local_server(tmp_path, monkeypatch, local_server):
    folder, url = local_server
    sizes = _fake_sample_repository(folder)
    monkeypatch.delenv(data.DATA_URL_ENV, raising=False)
    monkeypatch.setattr(data, "SAMPLES_URL", url)
    root = tmp_path / "root"
    with pytest.raises(DataError, match="DOWNLOAD = True"):
        open_split("imagenet-samples", "all", root=root)
    samples = open_split("imagenet-samples", "all", root=root, download=True)
    assert len(samples) == 100 and len(samples.classes) == 1000
    # labels index all 1000 classes (as torchvision's ImageNet nets do), names with spaces
    assert samples.labels.tolist() == list(range(0, 1000, 10))
    assert samples.classes[990] == "class 990" and samples.class_ids[990] == "n10000990"
    big, small, grey = (samples.decode(i) for i in range(3))
    assert big.shape == (3, 256, 384) and small.shape == (3, 90, 120) and grey.shape[0] == 3
    assert class_of(big) == 0 and class_of(small) == 1 and sizes[20] == (300, 260)
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    table = (root / "imagenet-samples" / "classes.json").read_text()
    assert (
        '"wnid": "n10000007"' in table
        and not (root / "imagenet-samples" / "images.partial").exists()
    )


def test_failed_sample_download_leaves_no_partial_dataset(tmp_path, monkeypatch, local_server):
    folder, url = local_server
    _fake_sample_repository(folder)
    (folder / "n10000500_class_500.JPEG").unlink()  # HTTP 404 for one photo
    monkeypatch.delenv(data.DATA_URL_ENV, raising=False)
    monkeypatch.setattr(data, "SAMPLES_URL", url)
    root = tmp_path / "root"
    with pytest.raises(DataError) as err:
        open_split("imagenet-samples", "all", root=root, download=True)
    assert "downloading imagenet-samples" in str(err.value) and "404" in str(err.value)
    assert data.find("imagenet-samples", root) is None  # the photos fetched so far are not used
    (folder / "n10000500_class_500.JPEG").write_bytes(make_image(2))
    assert len(open_split("imagenet-samples", "all", root=root, download=True)) == 100


def _serve_data_root(folder: Path) -> Path:
    """A data root in ``folder`` as a mirror serves it: CIFAR-10 as JPEG zips, and SHA256SUMS."""
    make_folder(folder / "build", splits=("train", "test"), per_class=3)
    (folder / "cifar10-jpeg").mkdir()
    for split in ("train", "test"):
        zip_folder(folder / "build", folder / "cifar10-jpeg" / f"{split}.zip", only=split + "/")
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()}  ./{p.relative_to(folder).as_posix()}"
        for p in sorted((folder / "cifar10-jpeg").iterdir())
    ]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return folder


def test_download_from_a_data_root_mirror(tmp_path, monkeypatch, local_server):
    folder, url = local_server
    _serve_data_root(folder)
    monkeypatch.setenv(data.DATA_URL_ENV, url)
    root = tmp_path / "root"
    train = load("cifar10", "train", root=root, download=True, progress=False)
    assert len(train) == 9 and train.classes == CLASSES
    assert [class_of(im) for im in train.images] == train.labels.tolist()
    assert (root / "cifar10-jpeg" / "test.zip").read_bytes() == (
        folder / "cifar10-jpeg" / "test.zip"
    ).read_bytes()
    with pytest.raises(DataError, match="lists no file under"):
        open_split("imagenette", "train", root=root, download=True)


def test_mirror_file_that_does_not_match_its_checksum_is_refused(
    tmp_path, monkeypatch, local_server
):
    folder, url = local_server
    _serve_data_root(folder)
    zip_path = folder / "cifar10-jpeg" / "train.zip"
    zip_path.write_bytes(zip_path.read_bytes()[:-10])  # truncated on the server
    monkeypatch.setenv(data.DATA_URL_ENV, url)
    root = tmp_path / "root"
    with pytest.raises(DataError, match="does not match its SHA-256") as err:
        open_split("cifar10", "train", root=root, download=True)
    assert data.DATA_URL_ENV in str(err.value)
    assert not (root / "cifar10-jpeg" / "train.zip").exists()


def test_decode_jpegs_without_torchcodec_matches_decode_image(monkeypatch):
    monkeypatch.setattr(data, "_torchcodec_jpeg", lambda: None)
    files = [make_image(0, size=(30, 20)), make_image(2, "L"), make_image(1, "CMYK")]
    batch = data.decode_jpegs([torch.frombuffer(bytearray(f), dtype=torch.uint8) for f in files])
    assert [tuple(im.shape) for im in batch] == [(3, 20, 30), (3, 16, 20), (3, 16, 20)]
    for im, f in zip(batch, files):
        assert torch.equal(im, data.decode_image(f))
    with pytest.raises(DataError, match="file 1 of the batch"):
        data.decode_jpegs([files[0], b"not a jpeg"])


def test_decode_jpegs_hands_the_whole_batch_to_torchcodec(monkeypatch):
    calls = []

    def fake_decode_jpeg(tensors, mode, device):
        calls.append((len(tensors), mode, device))
        if any(int(t[0]) != 0xFF for t in tensors):  # not a JPEG's first byte
            raise RuntimeError("Not a JPEG file")
        return [data._decode_pillow(t.numpy().tobytes()).to(device) for t in tensors]

    monkeypatch.setattr(data, "_torchcodec_jpeg", lambda: fake_decode_jpeg)
    files = [make_image(k) for k in range(3)]
    batch = data.decode_jpegs(files, device="cpu")
    assert calls == [(3, "RGB", torch.device("cpu"))]
    assert [class_of(im) for im in batch] == [0, 1, 2]
    with pytest.raises(DataError, match="batch of 2 JPEG files failed"):
        data.decode_jpegs([files[0], b"GIF89a"])


def test_torchcodec_and_pillow_give_the_same_pixels(monkeypatch):
    pytest.importorskip("torchcodec")
    assert data._torchcodec_jpeg() is not None
    g = torch.Generator().manual_seed(0)
    noise = (torch.rand(40, 56, 3, generator=g) * 255).to(torch.uint8).numpy()
    for mode in ("RGB", "L", "CMYK"):
        out = io.BytesIO()
        Image.fromarray(noise).convert(mode).save(out, "JPEG", quality=90)
        jpeg = out.getvalue()
        assert torch.equal(data.decode_image(jpeg), data._decode_pillow(jpeg)), mode
        assert torch.equal(data.decode_jpegs([jpeg])[0], data._decode_pillow(jpeg)), mode
    with pytest.raises(DataError, match="truncated"):  # torchcodec refuses it, Pillow explains
        data.decode_image(jpeg[: len(jpeg) // 2], "half.jpg")


def test_bench_decode_tiny_run_decoders_agree(capsys):
    import importlib.util

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_decode.py"
    spec = importlib.util.spec_from_file_location("bench_decode", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.main(["--tiny"])
    printed = capsys.readouterr().out
    rows = report["decoders"]
    assert {
        "torchvision.io.decode_jpeg (deprecated)",
        "Pillow",
        "alexlib.data.decode_image",
    } <= set(rows)
    for name, row in rows.items():
        assert row["max_diff"] == 0, name  # the same pixels as torchvision's decoder
        assert row["images_per_s"] > 0 and f"{row['ratio']:.2f}x" in printed


# ----------------------------------------------------------------------------------- the real
# offline data


def test_real_datasets_sizes_and_classes(shared_data):
    rows = {row["name"]: row for row in data.survey(shared_data)}
    assert rows["cifar10"]["splits"] == {"train": 50000, "test": 10000}
    assert rows["imagenette"]["splits"] == {"train": 9469, "val": 3925}
    assert rows["imagenet-samples"]["splits"] == {"all": 100}
    val = open_split("imagenette", "val", root=shared_data)
    assert val.classes[0] == "tench" and val.class_ids[0] == "n01440764" and len(val.classes) == 10
    cifar = open_split("cifar10", "test", root=shared_data)
    assert cifar.counts() == [1000] * 10


def test_real_subset_decodes_to_rgb(shared_data):
    nette = load("imagenette", "train", root=shared_data, per_class=3, seed=0, progress=False)
    assert nette.images.shape == (30, 3, 224, 224)
    assert torch.equal(torch.bincount(nette.labels), torch.full((10,), 3))
    samples = open_split("imagenet-samples", "all", root=shared_data)
    assert samples.classes[samples.labels[0]] == "tench"
    photo = samples.decode(0)
    assert photo.shape[0] == 3 and min(photo.shape[1:]) == 256


def test_load_indices_decodes_those_images_of_the_subset_alone(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXLIB_CACHE", str(tmp_path / "cache"))
    kw = dict(root=shared_data, per_class=3, seed=1, size=64, progress=False)
    whole = load("imagenette", "val", **kw)
    picked = load("imagenette", "val", indices=[29, 0, 7], **kw)
    assert torch.equal(picked.images, whole.images[[29, 0, 7]])
    assert torch.equal(picked.labels, whole.labels[[29, 0, 7]])
    with pytest.raises(DataError, match="indices run from 0 to 29; got 0 to 30"):
        load("imagenette", "val", indices=[0, 30], **kw)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "sub" / "result.json"
    _io.atomic_write_text(target, "first")
    assert target.read_text() == "first"

    def crash(f):
        f.write(b"half of the new con")
        raise KeyboardInterrupt  # a crash in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        _io.atomic_write(target, crash)
    assert target.read_text() == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "result.json"
    ]  # no temporary file left
    data.atomic_save({"x": torch.arange(3)}, target.with_suffix(".pt"))
    assert torch.equal(
        torch.load(target.with_suffix(".pt"), weights_only=True)["x"], torch.arange(3)
    )


def test_the_chapters_download_parameter_is_every_loaders_default(tmp_path, monkeypatch):
    import os

    # get_config(download=...) decides for every loader that is not told otherwise, in this
    # process and (through the environment) in the training processes it starts
    from alexlib import data
    from alexlib.config import get_config

    fetched = []
    monkeypatch.setattr(data, "_download", lambda name, root: fetched.append(name))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="not found"):
        data.open_split("cifar10", root=empty)  # no default set: nothing is fetched
    assert fetched == []
    assert get_config("smoke", download=True).download and data.download_default()
    assert os.environ["ALEXLIB_DOWNLOAD"] == "1"
    with pytest.raises(DataError, match="not found"):  # the stub fetched nothing
        data.open_split("cifar10", root=empty)
    assert fetched == ["cifar10"]
    with pytest.raises(DataError):
        data.open_split("cifar10", root=empty, download=False)  # an explicit False wins
    assert fetched == ["cifar10"]
    get_config("smoke", download=False)
    assert not data.download_default()
    get_config("smoke", seed=1)  # a call that does not mention download leaves it alone
    assert os.environ["ALEXLIB_DOWNLOAD"] == "0"


def test_provenance_keeps_the_commit_the_process_started_with(monkeypatch):
    # a long run stores the commit of the code it loaded, even if the checkout moves on meanwhile
    before = _io.provenance().get("commit")

    def moved_on(*args, **kwargs):
        raise AssertionError("provenance asked git again")

    monkeypatch.setattr(_io.subprocess, "run", moved_on)
    assert _io.provenance().get("commit") == before
