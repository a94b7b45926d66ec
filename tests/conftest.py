import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("UNBLUR_NO_PROGRESS", "1")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return DATA


def smooth_image(seed: int, h: int = 64, w: int = 72, c: int = 3) -> torch.Tensor:
    """A piecewise-smooth test image (blurred random shapes), deterministic."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(1, c, h, w)
    for _ in range(12):
        i, j = torch.randint(0, h - 8, (2,), generator=g)
        hh, ww = torch.randint(6, 30, (2,), generator=g)
        x[..., i:i + hh, j:j + ww] = torch.rand(c, 1, 1, generator=g)
    return torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A data folder laid out like ../shared/data with a few generated images."""
    from unblur import io

    root = tmp_path_factory.mktemp("data")
    (root / "natural" / "cbsd432").mkdir(parents=True)
    (root / "natural" / "train400_gray").mkdir(parents=True)
    for i in range(5):
        img = smooth_image(10 + i, 64, 80)[0].permute(1, 2, 0).numpy()
        io.write_image(root / "natural" / "cbsd432" / f"{i:03d}.png", img)
    for i in range(2):
        img = smooth_image(20 + i, 60, 60, c=1)[0, 0].numpy()
        io.write_image(root / "natural" / "train400_gray" / f"{i:03d}.png", img)
    return root
