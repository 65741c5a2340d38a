"""Differentiable 3D Gaussian rasterizer in pure PyTorch (the CPU reference renderer).

Follows the math of gsplat 1.5 (`fully_fused_projection` + `rasterize_to_pixels`, pinhole
camera, "RGB+D" mode) so that the gsplat CUDA backend can be checked against it:
- EWA projection: 2D covariance J W Sigma W^T J^T, with the Jacobian's x/z and y/z clamped to
  1.3 x the half field of view, plus a 0.3 px^2 low-pass (`eps2d`) on the diagonal.
- Opacity-aware, per-axis bounding box: extend = min(3.33, sqrt(2 ln(255 opacity))) standard
  deviations, so nothing outside the box could reach alpha >= 1/255.
- Per pixel, Gaussians front to back: alpha = min(0.999, opacity * exp(-0.5 d^T conic d)),
  skipped when alpha < 1/255; composition stops before the Gaussian that would bring the
  transmittance to <= 1e-4. Pixel centres sit at integer + 0.5.

Conventions (see `persona.camera`): OpenCV camera, WXYZ quaternions, images (H, W, C).

How it runs fast on a CPU without an N x H x W tensor, in two passes:
1. `select_contributions` (no autograd): bin Gaussians into tiles, sort by (tile, depth) and
   evaluate every (tile pixel, tile Gaussian) pair densely in chunks of tiles. The log-alpha
   of a Gaussian is a quadratic in the pixel coordinates, so one batched matmul produces it.
   The transmittance test then keeps only the (pixel, Gaussian) pairs that gsplat composites:
   about a fifth of the dense pairs on a body (box corners, far side, padding).
2. `composite` (autograd): recompute alpha exactly for the kept pairs only (sorted by pixel,
   then depth), transmittance by a segmented exclusive cumsum of log(1 - alpha), and
   scatter-add the weighted features. Autograd therefore stores a few tensors of the size
   of the kept pairs instead of the padded dense tiles.
The kept set is piecewise constant in the parameters, exactly like gsplat's skip and stop
tests, so the gradients are those of gsplat. The tile size changes speed only (results agree
to rounding). A CPU training process should call `tune_cpu_allocator()` once: it saves the
page faults of re-allocating large tensors on every call (10-30% of a step).
"""

from __future__ import annotations

import ctypes
import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from persona.camera import Camera

logger = logging.getLogger(__name__)

ALPHA_MIN = 1.0 / 255.0  # gsplat skips fainter contributions
ALPHA_MAX = 0.999  # gsplat clamps alpha so that 1 - alpha never vanishes
T_MIN = 1e-4  # gsplat stops a pixel once its transmittance would drop to this
MAX_EXTEND = 3.33  # bounding box half-size cap, in standard deviations


@dataclass
class Projected:
    """Gaussians projected to one camera (gsplat's `fully_fused_projection` outputs)."""

    means2d: torch.Tensor  # (N, 2) pixel coordinates of the centres
    conics: torch.Tensor  # (N, 3) inverse 2D covariance (a, b, c) = [[a, b], [b, c]], px^-2
    depths: torch.Tensor  # (N,) camera-space z, metres
    radii: torch.Tensor  # (N, 2) int32 bounding-box half sizes (x, y) in px, 0 when culled
    valid: torch.Tensor  # (N,) bool, False for culled Gaussians


@dataclass
class RenderOutput:
    features: torch.Tensor  # (H, W, C) composited features + (1 - alpha) * background
    alpha: torch.Tensor  # (H, W) accumulated opacity in [0, 1]
    depth: torch.Tensor  # (H, W) alpha-weighted camera-space z (not normalised by alpha)


def quat_scale_to_matrix(
    quats: torch.Tensor,  # (N, 4) WXYZ, any norm
    scales: torch.Tensor,  # (N, 3) standard deviations, metres
) -> torch.Tensor:  # (N, 3, 3) M = R S, so that the covariance is M M^T
    """Rotation (from normalised quaternions) times scale, as gsplat's `_quat_scale_to_matrix`."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    R = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(-1, 3, 3)
    return R * scales[:, None, :]


def project_gaussians(
    means: torch.Tensor,  # (N, 3) world positions, metres
    quats: torch.Tensor,  # (N, 4) WXYZ, any norm
    scales: torch.Tensor,  # (N, 3) standard deviations, metres
    opacities: torch.Tensor | None,  # (N,) in [0, 1]; None: fixed 3.33-sigma boxes
    camera: Camera,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> Projected:
    """EWA splatting of 3D Gaussians to `camera`, as gsplat 1.5 (pinhole, no compensation).

    Culled (radii 0, valid False): z < near_plane or > far_plane, singular 2D covariance,
    opacity < 1/255, or bounding box entirely outside the image."""
    dtype = means.dtype
    R_cw = camera.world_to_camera[:3, :3].to(means.device, dtype)  # (3, 3)
    t_cw = camera.world_to_camera[:3, 3].to(means.device, dtype)  # (3,)
    p = means @ R_cw.T + t_cw  # (N, 3) camera space
    x, y, z = p.unbind(-1)
    in_depth = (z >= near_plane) & (z <= far_plane)
    # Culled Gaussians still go through the math: give them a harmless z so that no inf
    # appears, because 0 * inf = nan in the backward pass would poison the gradients.
    z = torch.where(in_depth, z, torch.ones_like(z))

    fx, fy, cx, cy, W, H = camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)  # (N, 2)

    # Jacobian of the projection, evaluated with x/z, y/z clamped to 1.3x the field of view
    # (gsplat, after 3DGS): far off-screen Gaussians otherwise get huge, smeared footprints.
    lim_x_pos, lim_x_neg = (W - cx) / fx + 0.15 * W / fx, cx / fx + 0.15 * W / fx
    lim_y_pos, lim_y_neg = (H - cy) / fy + 0.15 * H / fy, cy / fy + 0.15 * H / fy
    tx = z * (x / z).clamp(-lim_x_neg, lim_x_pos)
    ty = z * (y / z).clamp(-lim_y_neg, lim_y_pos)
    zero = torch.zeros_like(z)
    J = torch.stack([fx / z, zero, -fx * tx / z**2, zero, fy / z, -fy * ty / z**2], dim=-1)
    T = J.reshape(-1, 2, 3) @ R_cw @ quat_scale_to_matrix(quats, scales)  # (N, 2, 3)
    cov = T @ T.transpose(1, 2)  # (N, 2, 2) = J W Sigma W^T J^T
    a, b, c = cov[:, 0, 0] + eps2d, cov[:, 0, 1], cov[:, 1, 1] + eps2d
    det = a * c - b * b
    det_safe = det.clamp(min=1e-10)
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], dim=-1)  # (N, 3)

    with torch.no_grad():
        extend = torch.full_like(z, MAX_EXTEND)
        valid = in_depth & (det > 0)
        if opacities is not None:
            o = opacities.detach()
            valid &= o >= ALPHA_MIN
            extend = extend.minimum((2 * torch.log(o.clamp(min=ALPHA_MIN) / ALPHA_MIN)).sqrt())
        rx = torch.ceil(extend * a.detach().clamp(min=0).sqrt())
        ry = torch.ceil(extend * c.detach().clamp(min=0).sqrt())
        valid &= (rx > 0) | (ry > 0)
        m = means2d.detach()
        valid &= (m[:, 0] + rx > 0) & (m[:, 0] - rx < W) & (m[:, 1] + ry > 0) & (m[:, 1] - ry < H)
        radii = (torch.stack([rx, ry], dim=-1) * valid[:, None]).to(torch.int32)
    return Projected(means2d, conics, p[:, 2], radii, valid)


@torch.no_grad()
def isect_tiles(
    means2d: torch.Tensor,  # (N, 2) px
    radii: torch.Tensor,  # (N, 2) int px, 0 for culled Gaussians
    depths: torch.Tensor,  # (N,) metres
    width: int,
    height: int,
    tile_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Gaussian, tile) pairs sorted by tile then depth, as gsplat's `isect_tiles`.

    Returns tile_ids (P,) int64 row-major tile index, gauss_ids (P,) int64, and
    tile_offsets (tiles_y * tiles_x + 1,) int64: the pairs of tile t are
    [tile_offsets[t], tile_offsets[t + 1])."""
    device = means2d.device
    tiles_x, tiles_y = -(-width // tile_size), -(-height // tile_size)
    order = torch.argsort(depths.detach(), stable=True)  # Gaussians front to back
    m, r = means2d.detach()[order], radii[order].to(means2d.dtype)
    keep = (r > 0).any(-1)
    order, m, r = order[keep], m[keep], r[keep]
    x0 = torch.floor((m[:, 0] - r[:, 0]) / tile_size).clamp(0, tiles_x).long()
    x1 = torch.ceil((m[:, 0] + r[:, 0]) / tile_size).clamp(0, tiles_x).long()
    y0 = torch.floor((m[:, 1] - r[:, 1]) / tile_size).clamp(0, tiles_y).long()
    y1 = torch.ceil((m[:, 1] + r[:, 1]) / tile_size).clamp(0, tiles_y).long()
    nx = x1 - x0
    n = nx * (y1 - y0)  # tiles touched by each Gaussian
    owner = torch.repeat_interleave(torch.arange(len(n), device=device), n)  # (P,) kept list
    j = torch.arange(len(owner), device=device) - (torch.cumsum(n, 0) - n)[owner]  # rank in box
    tile_ids = (y0[owner] + j // nx[owner]) * tiles_x + x0[owner] + j % nx[owner]
    # Pairs are already in depth order, so a stable sort by tile gives (tile, depth) order.
    tile_ids, perm = torch.sort(tile_ids, stable=True)
    gauss_ids = order[owner[perm]]
    counts = torch.bincount(tile_ids, minlength=tiles_x * tiles_y)
    tile_offsets = F.pad(torch.cumsum(counts, 0), (1, 0))
    return tile_ids, gauss_ids, tile_offsets


@torch.no_grad()
def select_contributions(
    proj: Projected,
    opacities: torch.Tensor,  # (N,) in [0, 1]
    width: int,
    height: int,
    tile_size: int = 8,
    chunk_elements: int = 1 << 20,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (pixel, Gaussian) pairs that gsplat composites, sorted by pixel then depth.

    Returns pixel_ids (M,) int64 (row-major y * width + x) and gauss_ids (M,) int64; the
    pairs of one pixel are contiguous and front to back. `chunk_elements` bounds the dense
    (tiles, pixels per tile, Gaussians per tile) work tensors."""
    dtype, device = proj.means2d.dtype, proj.means2d.device
    _, gauss_ids, offsets = isect_tiles(
        proj.means2d, proj.radii, proj.depths, width, height, tile_size
    )
    tiles_x = -(-width // tile_size)
    counts = offsets[1:] - offsets[:-1]
    # Process tiles in order of their Gaussian count so each chunk pads little.
    busy = torch.nonzero(counts).squeeze(1)
    busy = busy[torch.argsort(counts[busy])]

    # Pixel-centre coordinates inside a tile and the quadratic basis [x^2, xy, y^2, x, y, 1].
    # Tile-local coordinates keep the expansion's cancellation small in float32.
    local = torch.arange(tile_size, device=device)
    ly, lx = torch.meshgrid(local, local, indexing="ij")
    lx, ly = lx.reshape(-1), ly.reshape(-1)  # (S,) S = tile_size^2 pixels per tile
    u, v = lx.to(dtype) + 0.5, ly.to(dtype) + 0.5
    basis = torch.stack([u * u, u * v, v * v, u, v, torch.ones_like(u)], dim=-1)  # (S, 6)
    S = len(lx)

    # Per-Gaussian table gathered once per (tile, Gaussian) pair: centre, conic, log opacity.
    log_o = opacities.detach().clamp(min=1e-30).log()
    table = torch.cat([proj.means2d.detach(), proj.conics.detach(), log_o[:, None]], 1)  # (N, 6)
    log_alpha_max, log_t_min = math.log(ALPHA_MAX), math.log(T_MIN)
    # F.threshold keeps x > threshold; gsplat keeps alpha >= 1/255.
    zero = torch.tensor(0.0, dtype=dtype)
    below_min = torch.nextafter(torch.tensor(ALPHA_MIN, dtype=dtype), zero).item()
    # Work buffers reused by every chunk: fresh large allocations cost page faults on each
    # call, and a chunk that fits in the CPU cache makes the chain of in-place passes cheap.
    work = torch.empty(chunk_elements, dtype=dtype, device=device)
    keep_buf = torch.empty(chunk_elements, dtype=torch.bool, device=device)
    test_buf = torch.empty(chunk_elements, dtype=torch.bool, device=device)

    pixel_chunks, gauss_chunks = [], []
    start = 0
    while start < len(busy):
        # Take as many tiles as keep the dense (tiles, S, K) tensors under the budget; K is
        # the count of the chunk's last (busiest) tile.
        rest = counts[busy[start:]]
        cost = torch.arange(1, len(rest) + 1, device=device) * rest * S
        n_tiles = max(1, int((cost <= chunk_elements).sum()))
        tiles = busy[start : start + n_tiles]
        start += n_tiles
        T, K = len(tiles), int(counts[tiles[-1]])
        if T * S * K > len(work):  # a single tile over the budget
            work = torch.empty(T * S * K, dtype=dtype, device=device)
            keep_buf = torch.empty(T * S * K, dtype=torch.bool, device=device)
            test_buf = torch.empty(T * S * K, dtype=torch.bool, device=device)
        ks = torch.arange(K, device=device)
        in_tile = ks < counts[tiles, None]  # (T, K)
        slot = (offsets[tiles, None] + ks).clamp(max=len(gauss_ids) - 1)  # (T, K) padded
        g = gauss_ids.index_select(0, slot.view(-1))  # (T * K,)
        mx, my, a, b, c, log_o = table.index_select(0, g).view(T, K, 6).unbind(-1)  # (T, K)
        mx = mx - ((tiles % tiles_x) * tile_size).to(dtype)[:, None]  # tile-local centres
        my = my - ((tiles // tiles_x) * tile_size).to(dtype)[:, None]
        # log alpha = log o - (a dx^2 / 2 + b dx dy + c dy^2 / 2), expanded in (x, y).
        const = log_o - (0.5 * a * mx * mx + b * mx * my + 0.5 * c * my * my)
        const = torch.where(in_tile, const, torch.full_like(const, -1e4))  # padding: alpha 0
        coef = torch.stack([-0.5 * a, -b, -0.5 * c, a * mx + b * my, b * mx + c * my, const], 1)
        alpha = torch.matmul(basis, coef, out=work[: T * S * K].view(T, S, K))  # log alpha
        # The lower clamp keeps exp away from denormal floats, which are very slow on CPUs.
        alpha = alpha.clamp_(min=-20.0, max=log_alpha_max).exp_()
        # Zero what gsplat skips (alpha < 1/255): it then leaves the transmittance intact.
        alpha = F.threshold_(alpha, below_min, 0.0)
        keep = torch.gt(alpha, 0.0, out=keep_buf[: T * S * K].view(T, S, K))
        log_t = alpha.neg_().log1p_().cumsum_(2)  # transmittance after each Gaussian
        keep &= torch.gt(log_t, log_t_min, out=test_buf[: T * S * K].view(T, S, K))
        px = (tiles % tiles_x * tile_size)[:, None] + lx  # (T, S)
        py = (tiles // tiles_x * tile_size)[:, None] + ly
        if width % tile_size or height % tile_size:  # edge tiles overhang the image
            keep &= ((px < width) & (py < height))[:, :, None]
        # Flat indices come out in (tile, pixel, depth) order: grouped by pixel.
        flat = keep.view(-1).nonzero().squeeze(1)
        tile_pixel = flat // K  # index into (T, S)
        pixel_chunks.append((py * width + px).view(-1).index_select(0, tile_pixel))
        # Index into g of (t, k) = flat - (tile_pixel - t) * K: the shift depends on (t, s) only.
        rows = torch.arange(T * S, device=device)
        shift = ((rows // S - rows) * K).index_select(0, tile_pixel)
        gauss_chunks.append(g.index_select(0, flat + shift))
    if not pixel_chunks:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return empty, empty
    return torch.cat(pixel_chunks), torch.cat(gauss_chunks)


def composite(
    proj: Projected,
    opacities: torch.Tensor,  # (N,) in [0, 1]
    features: torch.Tensor,  # (N, C)
    pixel_ids: torch.Tensor,  # (M,) int64, grouped by pixel, front to back within a pixel
    gauss_ids: torch.Tensor,  # (M,) int64
    width: int,
    height: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Differentiable front-to-back alpha compositing of the (pixel, Gaussian) pairs from
    `select_contributions`; gradients flow to `proj` (hence means, quats, scales),
    `opacities` and `features`.

    Returns features (H * W, C), alpha (H * W,) and alpha-weighted depth (H * W,), without
    background."""
    dtype, device, C = features.dtype, features.device, features.shape[1]
    M = len(gauss_ids)
    # One gather of every per-Gaussian quantity, rows = quantities: on a CPU, `gather` along
    # the last dimension is the fastest of the indexing ops both ways (backward: scatter_add).
    packed = torch.cat(
        [proj.means2d.T, proj.conics.T, opacities[None], features.T, proj.depths[None]]
    )  # (7 + C, N)
    g = torch.gather(packed, 1, gauss_ids.expand(len(packed), M))  # (7 + C, M)
    mx, my, a, b, c, o, rest = g.split([1, 1, 1, 1, 1, 1, C + 1])  # (1, M) each, rest (C + 1, M)
    # Pixel centres. Float division is exact here (integer ids below 2^24, or float64) and
    # cheaper than int64 division.
    pixel_f = pixel_ids.to(dtype if height * width < 2**24 else torch.float64)
    row = torch.floor(pixel_f / width)
    dx = (pixel_f - row * width + 0.5).to(dtype) - mx
    dy = (row + 0.5).to(dtype) - my
    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    alpha = (o * torch.exp(-sigma)).clamp(max=ALPHA_MAX)[0]  # (M,)

    # Transmittance before each pair = exp(sum of log(1 - alpha) over the earlier pairs of
    # its pixel): an exclusive cumsum restarted at each pixel. The running sum over all M
    # pairs grows large, so it is accumulated in float64 to keep per-pixel differences
    # exact; cumsum's backward is a reversed cumsum, stable for any alpha <= 0.999 (unlike
    # cumprod's backward, which divides by the factors).
    with torch.no_grad():
        first = torch.ones(M, dtype=torch.bool, device=device)
        first[1:] = pixel_ids[1:] != pixel_ids[:-1]
        index = torch.arange(M, device=device)
        segment_start = torch.cummax(torch.where(first, index, 0), 0).values  # (M,)
    log1m = torch.log1p(-alpha).double()
    before = torch.cumsum(log1m, 0) - log1m  # (M,) exclusive
    transmittance = torch.exp(before - before.index_select(0, segment_start)).to(dtype)
    weights = alpha * transmittance  # (M,)

    values = torch.cat([weights[None], weights * rest])  # (C + 2, M) alpha, features, depth
    out = torch.zeros(C + 2, height * width, dtype=dtype, device=device)
    out = out.scatter_add(1, pixel_ids.expand(C + 2, M), values)
    return out[1 : C + 1].T, out[0], out[C + 1]


def rasterize_gaussians(
    means: torch.Tensor,  # (N, 3) world positions, metres
    quats: torch.Tensor,  # (N, 4) WXYZ, need not be normalised (normalised inside)
    scales: torch.Tensor,  # (N, 3) standard deviations in metres (linear, positive)
    opacities: torch.Tensor,  # (N,) in [0, 1]
    features: torch.Tensor,  # (N, C) any number of channels (RGB, normals, part labels...)
    camera: Camera,
    background: torch.Tensor | None = None,  # (C,) or None for zeros
    tile_size: int = 8,  # px; 8 measured fastest on CPU, results do not depend on it
) -> RenderOutput:
    """Render Gaussians with `camera`: gsplat 1.5's math, differentiable by autograd with
    respect to means, quats, scales, opacities and features. Works in the dtype of `means`."""
    # 1. Check inputs
    N = means.shape[0]
    expected = {"means": (means, 3), "quats": (quats, 4), "scales": (scales, 3)}
    for name, (tensor, width) in expected.items():
        if tensor.shape != (N, width):
            raise ValueError(f"{name} must have shape ({N}, {width}), got {tuple(tensor.shape)}")
    if opacities.shape != (N,):
        raise ValueError(f"opacities must have shape ({N},), got {tuple(opacities.shape)}")
    if features.dim() != 2 or features.shape[0] != N:
        raise ValueError(f"features must have shape ({N}, C), got {tuple(features.shape)}")
    C = features.shape[1]
    if background is not None and background.shape != (C,):
        raise ValueError(f"background must have shape ({C},), got {tuple(background.shape)}")
    if tile_size < 1:
        raise ValueError(f"tile_size must be positive, got {tile_size}")
    W, H = camera.width, camera.height

    # 2. Project, 3. choose the contributing (pixel, Gaussian) pairs, 4. composite them.
    proj = project_gaussians(means, quats, scales, opacities, camera)
    pixel_ids, gauss_ids = select_contributions(proj, opacities, W, H, tile_size)
    feats, alpha, depth = composite(proj, opacities, features, pixel_ids, gauss_ids, W, H)

    # 5. Background shows through what the Gaussians leave transparent.
    if background is not None:
        feats = feats + (1 - alpha)[:, None] * background.to(feats.dtype)
    return RenderOutput(feats.reshape(H, W, C), alpha.reshape(H, W), depth.reshape(H, W))


def tune_cpu_allocator() -> bool:
    """Process-wide: let glibc malloc keep freed memory for reuse. Call once per CPU process.

    A render allocates and frees tens of MB of tensors. By default glibc hands large blocks
    back to the OS and page-faults them in again on the next call, which cost 10-30% of a
    forward+backward here (2-core VM). Resident memory then stays at its peak instead.
    Returns False, with a log line, where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
        done = libc.mallopt(m_mmap_threshold, 1 << 30) and libc.mallopt(m_trim_threshold, 2**31 - 1)
    except (OSError, AttributeError) as error:
        logger.info("CPU allocator left as is: no glibc mallopt (%s)", error)
        return False
    if not done:
        logger.info("CPU allocator left as is: glibc mallopt refused the thresholds")
    return bool(done)
