"""Data augmentation on whole batches, with a different random transform for every image.

``torchvision.transforms.v2.RandomAffine`` accepts a batch but draws *one* set of parameters per
call, so every image of the batch moves the same way. :func:`random_affine` draws one rotation,
scaling and shift per image and resamples the batch in one ``F.affine_grid`` + ``F.grid_sample``
call; :class:`AugmentedLoader` puts any such transform in front of a loader::

    from dlcore.augment import AugmentedLoader, random_affine
    batches = TensorLoader(x, y, batch_size=128, generator=g)
    train = AugmentedLoader(batches, random_affine, seed=0)
    fit(model, loss_fn, opt, train, epochs=10)  # new images every epoch, same per seed

For image b, with angle a_b ~ U(-degrees, degrees), zoom s_b ~ U(scale) and offset
t_b ~ U(-2 shift, 2 shift)^2 (in ``affine_grid``'s coordinates, where the image spans [-1, 1], so
``shift`` is a fraction of the width), output pixel p takes the input's value at::

    q = R(a_b) p / s_b + t_b            R(a) = [[cos a, -sin a], [sin a, cos a]]

(bilinear interpolation): the content turns by -a_b, grows by s_b and moves by -s_b R(-a_b) t_b,
up to about ``shift`` of the image size. Where q falls outside the input the output is ``fill``
(at the edge, image and ``fill`` blended by the bilinear weights); pass the value of a blank pixel,
which after normalisation is not 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from dlcore._checks import check_real, check_seed, check_type

__all__ = ["random_affine", "AugmentedLoader"]


def _check_scale(scale: object) -> tuple[float, float]:
    if not (isinstance(scale, (tuple, list)) and len(scale) == 2):
        raise TypeError(f"scale must be a (low, high) pair, got {scale!r}")
    low = check_real("scale[0]", scale[0], 1e-3, 1e3)
    high = check_real("scale[1]", scale[1], 1e-3, 1e3)
    if low > high:
        raise ValueError(f"scale must have low <= high, got {scale!r}")
    return low, high


def random_affine(
    x: torch.Tensor,
    *,
    generator: torch.Generator,
    degrees: float = 10.0,
    shift: float = 0.1,
    scale: tuple[float, float] = (0.9, 1.1),
    fill: float = 0.0,
) -> torch.Tensor:
    """Rotate, scale and shift every image of ``x`` (B, C, H, W) by its own random
    amount.

    Parameters are drawn from ``generator`` (on its device; a CPU generator gives
    the same images on every device): rotation up to ±``degrees``, zoom in
    ``scale``, shift up to ±``shift`` of the image size along each axis. Uncovered
    pixels take the value ``fill`` (which must be finite in ``x``'s dtype). Returns a
    new tensor with the shape, dtype and device of ``x``.
    """
    check_type("x", x, torch.Tensor)
    if x.ndim != 4 or not x.is_floating_point():
        raise ValueError(
            f"x must be a floating (B, C, H, W) batch, got {tuple(x.shape)} "
            f"{x.dtype}"
        )
    check_type("generator", generator, torch.Generator)
    degrees = check_real("degrees", degrees, 0.0, 180.0)
    shift = check_real("shift", shift, 0.0, 1.0)
    low, high = _check_scale(scale)
    fill = check_real("fill", fill)
    if abs(fill) > torch.finfo(x.dtype).max:
        raise ValueError(
            f"fill must be finite in x's dtype {x.dtype}, got {fill!r}"
        )

    b, g = x.shape[0], generator
    if b == 0:  # nothing to move (affine_grid refuses an empty batch)
        return x.clone()
    turn = 2 * torch.rand(b, generator=g, device=g.device) - 1  # (B,), in [-1, 1)
    angle = turn * math.radians(degrees)  # (B,)
    zoom = low + (high - low) * torch.rand(b, generator=g, device=g.device)  # (B,)
    step = 2 * torch.rand(b, 2, generator=g, device=g.device) - 1  # (B, 2)
    offset = step * 2 * shift  # (B, 2)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [
            torch.stack([cos, -sin, offset[:, 0]], 1),
            torch.stack([sin, cos, offset[:, 1]], 1),
        ],
        1,
    ).to(device=x.device, dtype=x.dtype)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2)
    out = F.grid_sample(x, grid, align_corners=False)  # 0 outside the input
    if fill == 0:
        return out
    # Blend, not shift: sampling x - fill and adding fill back (as this did) loses
    # the image to rounding once |fill| dwarfs it (fill 1e8 moved pixels by 0.99).
    return out.add_(_outside_weight(grid, x.shape[-2:]), alpha=fill)


def _outside_weight(grid: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """The share of bilinear weight that sampling at ``grid`` (B, H, W, 2) puts
    outside an image of ``size`` (H, W), as (B, 1, H, W): exactly 0 where all four
    neighbours are inside, exactly 1 where none is.

    ``1 - grid_sample(ones)`` is the same in exact arithmetic, but rounding leaves
    up to 6e-8 inside the image, which a fill of 1e8 turns into 6.
    """
    # in float32 at least: float16 weights would be coarser than the blend needs
    grid = grid.to(torch.promote_types(grid.dtype, torch.float32))
    inside = []  # per axis, (B, H, W); contiguous copies: strided ops are ~5x slower
    for coord, n in zip(grid.movedim(-1, 0).contiguous(), (size[1], size[0])):
        # Along an axis of n pixels the weight on pixels inside is 1 up to n/2 - 1/2
        # pixels from the centre (pixel centres 0 and n - 1), 0 from a pixel further.
        from_centre = (coord * (n / 2)).abs_()  # in pixels (align_corners=False)
        inside.append(((n + 1) / 2 - from_centre).clamp_(0, 1))
    return (1 - inside[0] * inside[1]).unsqueeze(1)


class AugmentedLoader:
    """A loader whose every batch ``(x, y)`` comes out as ``(transform(x, generator=g), y)``.

    ``g`` is this loader's own CPU generator, seeded with ``seed`` and never reset, so each epoch sees
    new images and the same seed gives the same images. ``len`` is the inner loader's.
    ``state_dict()`` holds ``g`` and the inner loader's shuffle state (its ``state_dict()``, or the
    ``generator`` of a ``torch.utils.data.DataLoader``), so ``fit(..., resume_from=...)`` continues
    bit for bit as it does with the bare loader.
    """

    def __init__(
        self,
        loader: Iterable[Any],
        transform: Callable[..., torch.Tensor],
        *,
        seed: int = 0,
    ) -> None:
        if not isinstance(loader, Iterable) or isinstance(loader, Iterator):
            raise TypeError(
                "loader must be a re-iterable of (x, y) batches (not a one-pass "
                "iterator), "
                f"got {type(loader).__name__}"
            )
        if not callable(transform):
            raise TypeError(
                f"transform must be callable, got {type(transform).__name__}"
            )
        seed = check_seed("seed", seed)
        self.loader, self.transform, self.seed = loader, transform, seed
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, Any]]:
        for batch in self.loader:
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                raise TypeError(
                    f"loader must yield (x, y) pairs, got {type(batch).__name__}"
                )
            x, y = batch
            yield self.transform(x, generator=self.generator), y

    def state_dict(self) -> dict[str, Any]:
        """This loader's generator state and the inner loader's shuffle state."""
        inner = self.loader
        inner_generator = getattr(inner, "generator", None)
        return {
            "generator": self.generator.get_state(),
            "loader": inner.state_dict() if hasattr(inner, "state_dict") else None,
            "loader_generator": (
                inner_generator.get_state()
                if not hasattr(inner, "state_dict")
                and isinstance(inner_generator, torch.Generator)
                else None
            ),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        keys = {"generator", "loader", "loader_generator"}
        if not isinstance(state, dict) or set(state) != keys:
            raise ValueError(
                "state must be a dict from AugmentedLoader.state_dict(), got "
                f"{state!r:.80}"
            )
        inner = self.loader
        if state["loader"] is not None:
            if not hasattr(inner, "load_state_dict"):
                raise ValueError(
                    f"state holds a loader state that {type(inner).__name__} "
                    "cannot load"
                )
            inner.load_state_dict(state["loader"])
        if state["loader_generator"] is not None:
            inner_generator = getattr(inner, "generator", None)
            if not isinstance(inner_generator, torch.Generator):
                raise ValueError(
                    f"state holds a generator state, {type(inner).__name__} has "
                    "none"
                )
            inner_generator.set_state(state["loader_generator"].cpu())
        self.generator.set_state(state["generator"].cpu())

    def __repr__(self) -> str:
        name = getattr(self.transform, "__name__", type(self.transform).__name__)
        return (
            f"AugmentedLoader({self.loader!r}, transform={name}, seed={self.seed})"
        )
