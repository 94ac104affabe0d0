"""alexlib.augment: preprocessing, crops and flips, PCA colour, test views, and the three paths.

References are torchvision's transforms v2 and explicit per-image formulas; the "GPU path" runs on
the CPU device here (the same tensor ops; CUDA itself is exercised by benchmarks/bench_pipeline.py).
"""

import pytest
import torch
from torch.testing import assert_close
from torchvision.transforms.v2 import functional as TF

from alexlib import augment as A
from alexlib import recipe
from alexlib.data import DataError, ImageTensors, open_split, resize_center_crop


def _images(n=6, size=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def _stats(images):
    return A.DatasetStats(A.mean_image(images), *A.rgb_pca(images), n_images=len(images))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXLIB_CACHE", str(tmp_path))
    return tmp_path


# ----------------------------------------------------------------------------------- crops, flips,
# views


def test_crop_flip_matches_torchvision_per_image():
    images = _images(8)
    params = A.sample_params(8, 256, 224, generator=torch.Generator().manual_seed(1))
    out = A.crop_flip(
        images, params.offsets, params.flips, 224, method="gather"
    )  # the GPU's method
    assert out.shape == (8, 3, 224, 224) and out.dtype == torch.uint8
    assert_close(
        A.crop_flip(images, params.offsets, params.flips, 224, method="loop"), out, rtol=0, atol=0
    )
    for i in range(8):
        top, left = params.offsets[i].tolist()
        ref = TF.crop(images[i], top, left, 224, 224)
        if params.flips[i]:
            ref = TF.horizontal_flip(ref)
        assert_close(out[i], ref, rtol=0, atol=0)
    assert params.flips.any() and not params.flips.all()  # both branches were exercised


def test_crop_flip_227_and_extreme_offsets():
    images = _images(2)
    offsets = torch.tensor([[0, 0], [29, 29]])  # 256 - 227 = 29: the last valid position
    out = A.crop_flip(images, offsets, torch.tensor([False, True]), 227, method="gather")
    assert out.shape == (2, 3, 227, 227)
    assert_close(
        A.crop_flip(images, offsets, torch.tensor([False, True]), 227, method="loop"),
        out,
        rtol=0,
        atol=0,
    )
    assert_close(out[0], images[0, :, :227, :227], rtol=0, atol=0)
    assert_close(out[1], images[1, :, 29:, 29:].flip(-1), rtol=0, atol=0)


def test_flip_twice_is_identity():
    images = _images(4)
    zero, flip = torch.zeros(4, 2, dtype=torch.long), torch.ones(4, dtype=torch.bool)
    once = A.crop_flip(images, zero, flip, 256)
    assert_close(once, images.flip(-1), rtol=0, atol=0)
    assert_close(A.crop_flip(once, zero, flip, 256), images, rtol=0, atol=0)


def test_center_crop_256_to_224_is_offset_16():
    images = _images(3)
    assert A.center_params(3, 256, 224).tolist() == [[16, 16]] * 3
    out = A.center_crop(images, 224)
    assert_close(out, images[..., 16:240, 16:240], rtol=0, atol=0)
    assert_close(out, TF.center_crop(images, [224, 224]), rtol=0, atol=0)
    # odd margins round like torchvision: 256 -> 227 starts at 14 or 15
    assert_close(A.center_crop(images, 227), TF.center_crop(images, [227, 227]), rtol=0, atol=0)


def test_ten_crop_views_and_mirrors():
    images = _images(2)
    views = A.ten_crop(images, 224)
    assert views.shape == (2, 10, 3, 224, 224)
    five = TF.five_crop(
        images, [224, 224]
    )  # (top-left, top-right, bottom-left, bottom-right, centre)
    for i in range(5):
        assert_close(views[:, i], five[i], rtol=0, atol=0)
        assert_close(views[:, 5 + i], views[:, i].flip(-1), rtol=0, atol=0)
    # torchvision's ten_crop crops the reflected image, so its corners swap left and right
    tv = TF.ten_crop(images, [224, 224])
    for ours, theirs in [(5, 6), (6, 5), (7, 8), (8, 7), (9, 9)]:
        assert_close(views[:, ours], tv[theirs], rtol=0, atol=0)
    assert_close(views[:, 0], images[..., :224, :224], rtol=0, atol=0)
    assert_close(views[:, 3], images[..., 32:, 32:], rtol=0, atol=0)


def test_crop_errors_say_what_to_do():
    images = _images(2)
    with pytest.raises(ValueError, match="does not fit"):
        A.crop_flip(
            images, torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, dtype=torch.bool), 300
        )
    with pytest.raises(ValueError, match=r"offsets must lie in \[0, 32\]"):
        A.crop_flip(images, torch.tensor([[0, 0], [33, 0]]), torch.zeros(2, dtype=torch.bool), 224)
    bad = A.AugmentParams(
        torch.tensor([[0, 0], [0, 40]]), torch.zeros(2, dtype=torch.bool), torch.zeros(2, 3)
    )
    with pytest.raises(ValueError, match=r"offsets must lie in \[0, 32\]"):
        A.augment_batch(images, bad, _stats(images), 224)
    with pytest.raises(ValueError, match=r"image\[None\]"):
        A.center_crop(images[0], 224)
    with pytest.raises(ValueError, match=r"offsets must be \(2, 2\)"):
        A.crop_flip(
            images, torch.zeros(3, 2, dtype=torch.long), torch.zeros(3, dtype=torch.bool), 224
        )


# ----------------------------------------------------------------------------------- random
# parameters


def test_sample_params_ranges_and_reproducible():
    p = A.sample_params(20000, 256, 224, generator=torch.Generator().manual_seed(0))
    q = A.sample_params(20000, 256, 224, generator=torch.Generator().manual_seed(0))
    assert_close(p.offsets, q.offsets)
    assert_close(p.alphas, q.alphas)
    assert (
        p.offsets.shape == (20000, 2) and p.flips.shape == (20000,) and p.alphas.shape == (20000, 3)
    )
    # every one of the 33 x 33 positions is possible and nothing outside: (256-224+1)^2 * 2 = 2178
    # inputs
    assert p.offsets.min().item() == 0 and p.offsets.max().item() == 32
    assert len(torch.unique(p.offsets[:, 0])) == 33 and len(torch.unique(p.offsets[:, 1])) == 33
    assert abs(p.flips.float().mean().item() - 0.5) < 0.02
    assert (
        abs(p.alphas.std().item() - recipe.PCA_STD) < 0.003 and abs(p.alphas.mean().item()) < 0.003
    )
    off = A.sample_params(5, flip=False, alpha_std=0)
    assert not off.flips.any() and (off.alphas == 0).all()


# ----------------------------------------------------------------------------------- statistics


def test_mean_image_of_constant_batch_is_the_constant():
    images = torch.full((5, 3, 16, 16), 37, dtype=torch.uint8)
    assert_close(A.mean_image(images), torch.full((3, 16, 16), 37.0))


def test_mean_image_matches_torch_mean_in_chunks_and_batches():
    images = _images(10, 32)
    ref = images.double().mean(dim=0).float()
    assert_close(A.mean_image(images, chunk=3), ref)
    assert_close(A.mean_image(iter([images[:4], images[4:]])), ref)
    with pytest.raises(ValueError, match="same size"):
        A.mean_image(iter([images[:2], _images(2, 16)]))


def test_rgb_pca_orthonormal_and_reconstructs_covariance():
    g = torch.Generator().manual_seed(0)
    # correlated colours, so the three eigenvalues differ clearly
    base = torch.rand(8, 1, 24, 24, generator=g) * 180
    images = (
        base
        + torch.rand(8, 3, 24, 24, generator=g) * torch.tensor([20.0, 50.0, 70.0])[:, None, None]
    ).to(torch.uint8)
    eigvals, eigvecs = A.rgb_pca(images, chunk=3)
    assert eigvals.shape == (3,) and eigvecs.shape == (3, 3)
    assert (eigvals[:-1] >= eigvals[1:]).all() and (eigvals > 0).all()
    assert_close(eigvecs.T @ eigvecs, torch.eye(3), atol=1e-5, rtol=0)
    pixels = (
        images.permute(1, 0, 2, 3).reshape(3, -1).double() / 255
    )  # (3, N*H*W) on the [0, 1] scale
    ref = torch.cov(pixels).float()
    assert_close(eigvecs @ torch.diag(eigvals) @ eigvecs.T, ref, atol=1e-6, rtol=1e-4)
    # on the [0, 255] scale the eigenvalues are 255^2 larger
    assert_close(
        torch.linalg.eigvalsh(torch.cov(pixels * 255)).flip(0).float(),
        eigvals * 255**2,
        rtol=1e-4,
        atol=1e-3,
    )


def test_pca_colour_zero_alphas_is_identity_and_matches_formula():
    images = _images(4, 32)
    eigvals, eigvecs = A.rgb_pca(images)
    x = images.float()
    assert_close(A.pca_colour(x, eigvecs, eigvals, torch.zeros(4, 3)), x, rtol=0, atol=0)
    alphas = A.pca_alphas(4, generator=torch.Generator().manual_seed(3))
    out = A.pca_colour(x, eigvecs, eigvals, alphas)
    for n in range(4):
        # the paper: add [p1 p2 p3][a1 l1, a2 l2, a3 l3]^T to every pixel (here in [0, 255] units)
        shift = sum(eigvecs[:, i] * alphas[n, i] * eigvals[i] for i in range(3)) * 255
        assert_close(out[n], x[n] + shift[:, None, None])
        shift_sqrt = sum(eigvecs[:, i] * alphas[n, i] * eigvals[i].sqrt() for i in range(3)) * 255
        assert_close(
            A.pca_colour(x[n : n + 1], eigvecs, eigvals, alphas[n : n + 1], sqrt_eigvals=True)[0],
            x[n] + shift_sqrt[:, None, None],
        )
    with pytest.raises(TypeError, match="float"):
        A.pca_colour(images, eigvecs, eigvals, alphas)
    with pytest.raises(ValueError, match=r"alphas must be \(4, 3\)"):
        A.pca_colour(x, eigvecs, eigvals, alphas[:2])


def test_dataset_stats_is_cached_by_content(cache, monkeypatch):
    images = _images(6, 64)
    data = ImageTensors(images, torch.arange(6) % 2, ["a", "b"], "toy", "train")
    first = A.dataset_stats(data, size=64)
    files = list((cache / "stats").glob("toy-train-*.pt"))
    assert len(files) == 1
    assert_close(first.mean, A.mean_image(images))
    with monkeypatch.context() as m:
        m.setattr(
            A,
            "mean_image",
            lambda *a, **k: pytest.fail("recomputed instead of read from the cache"),
        )
        again = A.dataset_stats(data, size=64)
    assert_close(again.mean, first.mean)
    assert_close(again.eigvecs, first.eigvecs)
    other = ImageTensors(_images(6, 64, seed=1), data.labels, data.classes, "toy", "train")
    assert A.dataset_stats(other, size=64).key != first.key  # different pixels, different entry
    assert len(list((cache / "stats").glob("*.pt"))) == 2


def test_dataset_stats_preprocesses_other_sizes(cache):
    images = _images(3, 100)
    stats = A.dataset_stats(images, size=64, cache=False)
    assert stats.mean.shape == (3, 64, 64)
    assert_close(stats.mean, A.mean_image(resize_center_crop(images, 64)))


# ----------------------------------------------------------------------------------- preprocessing


def test_preprocess_mixed_sizes_and_greyscale():
    g = torch.Generator().manual_seed(0)
    photos = [
        torch.randint(0, 256, s, dtype=torch.uint8, generator=g)
        for s in [(3, 300, 400), (3, 512, 256), (1, 260, 300), (3, 300, 400)]
    ]
    out = A.preprocess(photos, 256)
    assert out.shape == (4, 3, 256, 256) and out.dtype == torch.uint8
    for i, p in enumerate(photos):
        assert_close(out[i], resize_center_crop(A.to_rgb(p), 256), rtol=0, atol=0)
    assert_close(out[2][0], out[2][1], rtol=0, atol=0)  # grey stays grey: R = G = B
    with pytest.raises(ValueError, match="RGB"):
        A.to_rgb(torch.zeros(4, 8, 8, dtype=torch.uint8))


# ----------------------------------------------------------------------------------- the paths
# agree


def test_gpu_path_and_cpu_path_give_the_same_pixels():
    images = _images(8)
    stats = _stats(images)
    params = A.sample_params(8, 256, 224, generator=torch.Generator().manual_seed(5))
    batch = A.augment_batch(images, params, stats, 224)  # the "GPU path", here on the CPU device
    assert_close(
        A.augment_batch(images, params, stats, 224, method="gather"), batch
    )  # CUDA's method
    assert batch.shape == (8, 3, 224, 224) and batch.dtype == torch.float32
    cpu = A.TrainTransform(stats, 224)
    for i in range(8):
        assert_close(
            batch[i], cpu.apply(images[i], params.offsets[i], params.flips[i], params.alphas[i])
        )
    # and both equal the definition: crop, reflect, subtract the mean image, add the colour shift
    i = int(torch.nonzero(params.flips)[0])
    top, left = params.offsets[i].tolist()
    crop = (images[i].float() - stats.mean)[:, top : top + 224, left : left + 224].flip(-1)
    shift = stats.eigvecs @ (params.alphas[i] * stats.eigvals) * 255
    assert_close(batch[i], crop + shift[:, None, None])


def test_gpu_loader_epoch_and_eval_views():
    images, labels = _images(10, 64), torch.arange(10)
    stats = _stats(images)
    train = A.GPULoader(images, labels, stats, batch_size=4, crop=56, drop_last=False, seed=1)
    seen = torch.cat([y for _, y in train])
    assert sorted(seen.tolist()) == list(range(10))  # every image once per epoch
    x, y = next(iter(A.GPULoader(images, labels, stats, batch_size=4, crop=56, seed=1)))
    x2, y2 = next(iter(A.GPULoader(images, labels, stats, batch_size=4, crop=56, seed=1)))
    assert x.shape == (4, 3, 56, 56) and torch.equal(y, y2)
    assert_close(x, x2)
    evals = A.GPULoader(images, labels, stats, batch_size=4, crop=56, train=False)
    assert len(evals) == 3
    cpu = A.cpu_loader(images, labels, stats, batch_size=4, crop=56, train=False)
    for (xg, yg), (xc, yc) in zip(evals, cpu, strict=True):
        assert_close(xg, xc)
        assert torch.equal(yg, yc)
    assert_close(next(iter(evals))[0], (images[:4].float() - stats.mean)[..., 4:60, 4:60])


@pytest.mark.parametrize("workers", [0, 2])
def test_cpu_loader_is_seeded(workers):
    images, labels = _images(8, 64), torch.arange(8)
    stats = _stats(images)
    runs = []
    for seed in (3, 3, 4):
        loader = A.cpu_loader(
            images, labels, stats, batch_size=4, crop=56, num_workers=workers, seed=seed
        )
        runs.append([(x, y) for x, y in loader])
    assert len(runs[0]) == 2 and runs[0][0][0].shape == (4, 3, 56, 56)
    for (xa, ya), (xb, yb) in zip(runs[0], runs[1]):
        assert_close(xa, xb)
        assert torch.equal(ya, yb)
    assert not torch.equal(runs[0][0][0], runs[2][0][0])  # another seed, other draws


def test_cpu_loader_workers_draw_differently():
    # eight copies of one image, no mean and no colour: each output is just its crop and flip
    image = _images(1, 64).expand(8, -1, -1, -1)
    stats = A.DatasetStats(torch.zeros(3, 64, 64), torch.zeros(3), torch.eye(3), n_images=8)
    loader = A.cpu_loader(
        image, torch.arange(8), stats, batch_size=1, crop=56, num_workers=2, seed=0
    )
    out = [x[0] for x, _ in loader]  # worker 0 makes items 0, 2, 4, 6; worker 1 makes 1, 3, 5, 7
    # with one generator copied into both workers, every pair would be equal
    assert not all(torch.equal(out[i], out[i + 1]) for i in range(0, 8, 2))


def test_eval_batch_ten_views_subtract_the_mean():
    images = _images(2)
    stats = _stats(images)
    views = A.eval_batch(images, stats, 224, views="ten")
    assert views.shape == (2, 10, 3, 224, 224)
    assert_close(views, A.ten_crop(images.float() - stats.mean, 224))
    with pytest.raises(ValueError, match="'center' or 'ten'"):
        A.eval_batch(images, stats, 224, views="five")


# ----------------------------------------------------------------------------------- streaming


def _jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """A (C, H, W) uint8 image (C = 1 or 3) encoded as JPEG by Pillow: a 1-D uint8 tensor."""
    import io

    from PIL import Image

    pixels = image.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if image.shape[0] == 1 else pixels).save(
        buffer, format="JPEG", quality=quality
    )
    return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)


class _ToySplit:
    """A split of JPEG files made here (the real-data test below uses Imagenette)."""

    def __init__(self, images, quality=95):
        self.files = [_jpeg(im, quality) for im in images]
        self.labels = torch.arange(len(images))

    def __len__(self):
        return len(self.files)

    def read_bytes(self, i):
        return bytes(self.files[i].numpy())


def test_decode_batch_matches_one_by_one_decoding():
    from alexlib.data import decode_image

    g = torch.Generator().manual_seed(0)
    photos = [
        torch.randint(0, 256, s, dtype=torch.uint8, generator=g)
        for s in [(3, 240, 320), (1, 300, 260)]
    ]
    split = _ToySplit(photos)
    files = [A.JpegBytes(split)[i][0] for i in range(2)]
    out = A.decode_batch(files, "cpu", 256)
    assert out.shape == (2, 3, 256, 256)
    for i, f in enumerate(files):
        ref = resize_center_crop(decode_image(bytes(f.numpy())), 256)
        assert_close(out[i], ref, rtol=0, atol=0)
    with pytest.raises(DataError, match="not a valid JPEG"):
        A.decode_batch([torch.tensor([1, 2, 3], dtype=torch.uint8)])


def test_decode_batch_turns_cmyk_into_the_same_rgb_as_the_data_layer():
    import io

    from PIL import Image

    from alexlib.data import decode_image

    rgb = torch.randint(
        0, 256, (48, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    buffer = io.BytesIO()
    Image.fromarray(rgb.numpy()).convert("CMYK").save(buffer, format="JPEG", quality=95)
    data = buffer.getvalue()
    out = A.decode_batch([torch.frombuffer(bytearray(data), dtype=torch.uint8)], "cpu", 48)
    assert out.shape == (1, 3, 48, 48)
    assert_close(out, A.preprocess([decode_image(data)], 48), rtol=0, atol=1)


def test_stream_loader_equals_augmenting_the_decoded_batch():
    images = _images(6, 256)
    split = _ToySplit(images)
    decoded = A.decode_batch([A.JpegBytes(split)[i][0] for i in range(6)])
    stats = _stats(decoded)
    stream = A.StreamLoader(split, stats, batch_size=3, crop=224, train=False)
    xs, ys = zip(*stream)
    assert torch.equal(torch.cat(ys), torch.arange(6))
    assert_close(torch.cat(xs), A.eval_batch(decoded, stats, 224))
    train = A.StreamLoader(split, stats, batch_size=3, crop=224, train=True, seed=2)
    ((x, y),) = [next(iter(train))]
    g = torch.Generator().manual_seed(2)
    params = A.sample_params(3, 256, 224, generator=g)
    assert_close(x, A.augment_batch(decoded[y], params, stats, 224))


def test_stream_real_imagenette_jpegs(shared_data):
    split = open_split("imagenette", "val", root=shared_data)
    sub = split.subset(range(0, len(split), len(split) // 8)[:8])
    files = [A.JpegBytes(sub)[i][0] for i in range(len(sub))]
    batch = A.decode_batch(files, "cpu", 256)
    assert batch.shape == (8, 3, 256, 256)
    # libjpeg through torchvision vs Pillow: the same file, (nearly) the same pixels
    ref = A.preprocess([sub.decode(i) for i in range(len(sub))], 256)
    assert (batch.float() - ref.float()).abs().mean() < 1.0


# ----------------------------------------------------------------------------------- chapter 7's
# figures


def test_chapter7_figures_draw_what_they_are_given():
    import matplotlib

    matplotlib.use("Agg")
    from alexlib import figures

    images = _images(4, 64)
    stats = _stats(images)
    photos = [images[0, :, :40, :64], A.to_rgb(images[1, :1])]
    fig = figures.preprocess_steps(photos, A.preprocess(photos, 64), ["a", "b"])
    assert len(fig.axes) == 4 and fig.axes[0].get_title() == "a: 64x40"
    params = A.sample_params(4, 64, 56, generator=torch.Generator().manual_seed(0))
    fig = figures.crop_positions(
        images[0],
        params.offsets,
        params.flips,
        A.crop_flip(images, params.offsets, params.flips, 56),
    )
    assert (
        len(fig.axes) == 5 and len(fig.axes[0].patches) == 4
    )  # the photo with 4 outlines, then 4 patches
    fig = figures.pca_colour_grid(images[0], stats.eigvecs, stats.eigvals, [-1.0, 0.0, 1.0])
    assert len(fig.axes) == 9 and fig.axes[1].get_title().endswith("RGB +0, +0, +0")
    assert len(figures.pca_axes(images, stats.eigvals, stats.eigvecs, n_pixels=100).axes) == 2
    assert len(figures.mean_image_panels(stats.mean, images[0], 4).axes) == 3
    assert len(figures.augmented_inputs(A.augment_batch(images, params, stats, 56)).axes) == 4
