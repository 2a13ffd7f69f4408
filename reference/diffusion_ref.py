"""PyTorch reference of the DiC diffusion (README.md "Numerics"), written from the description.

Linear betas, timestep respacing, DDPM with learned-range (or fixed-large) variance, DDIM with eta,
DPM-Solver++(2M) (Lu et al. 2022, arXiv 2211.01095, Algorithm 2), classifier-free guidance in
`reference` (3 channels, the official quirk) and `standard` modes.
Numerics mirror the official release: coefficients in float64 numpy, read per step as float32,
tensors in float32. Noise is injected (`step_noises`) so that other implementations can be compared.
"""
import numpy as np
import torch

TRAIN_TIMESTEPS = 1000


def linear_betas(num_timesteps=TRAIN_TIMESTEPS):
    """Linear betas from scale*1e-4 to scale*0.02, scale = 1000 / num_timesteps (float64)."""
    scale = 1000 / num_timesteps
    return np.linspace(scale * 0.0001, scale * 0.02, num_timesteps, dtype=np.float64)


def space_timesteps(num_timesteps, section_counts):
    """Sorted list of original timesteps kept by a respacing ("50", "ddim50", "10,15,20" or a list)."""
    if isinstance(section_counts, str):
        if section_counts.startswith("ddim"):
            want = int(section_counts[4:])
            for stride in range(1, num_timesteps):
                kept = list(range(0, num_timesteps, stride))
                if len(kept) == want:
                    return kept
            raise ValueError(f"no integer stride gives {want} of {num_timesteps} steps")
        section_counts = [int(s) for s in section_counts.split(",")]
    per, extra = divmod(num_timesteps, len(section_counts))
    kept, begin = set(), 0
    for i, count in enumerate(section_counts):
        size = per + (1 if i < extra else 0)
        if size < count:
            raise ValueError(f"section of {size} steps cannot hold {count}")
        stride = 1 if count <= 1 else (size - 1) / (count - 1)
        pos = 0.0
        for _ in range(count):
            kept.add(begin + round(pos))
            pos += stride
        begin += size
    return sorted(kept)


class Diffusion:
    """Per-step coefficients (float64) of a diffusion with the given betas; step 0 = least noisy."""

    def __init__(self, betas, timestep_map=None):
        b = np.asarray(betas, dtype=np.float64)
        n = len(b)
        self.num_timesteps = n
        self.timestep_map = list(range(n)) if timestep_map is None else list(timestep_map)
        self.betas = b
        self.log_betas = np.log(b)
        ac = np.cumprod(1.0 - b)
        self.alphas_cumprod = ac
        self.alphas_cumprod_prev = np.concatenate([[1.0], ac[:-1]])
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / ac)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / ac - 1.0)
        post_var = b * (1.0 - self.alphas_cumprod_prev) / (1.0 - ac)
        self.posterior_variance = post_var
        first = post_var[1] if n > 1 else post_var[0]
        with np.errstate(divide="ignore"):
            # n == 1: log(0) at step 0, which adds no noise and never reads it
            self.posterior_log_variance_clipped = np.log(np.concatenate([[first], post_var[1:]]))
        self.posterior_mean_coef1 = b * np.sqrt(self.alphas_cumprod_prev) / (1.0 - ac)
        self.posterior_mean_coef2 = (1.0 - self.alphas_cumprod_prev) * np.sqrt(1.0 - b) / (1.0 - ac)
        fixed_large = np.concatenate([[first], b[1:]])
        self.fixed_large_log_variance = np.log(fixed_large)


def spaced_diffusion(use_timesteps, base_betas=None):
    """The diffusion restricted to `use_timesteps`, keeping alphas_cumprod at the kept steps."""
    base = Diffusion(linear_betas() if base_betas is None else base_betas)
    keep = set(use_timesteps)
    betas, tmap, last = [], [], 1.0
    for t, ac in enumerate(base.alphas_cumprod):
        if t in keep:
            betas.append(1.0 - ac / last)
            last = ac
            tmap.append(t)
    return Diffusion(np.array(betas), tmap)


def create_diffusion(respacing, num_timesteps=TRAIN_TIMESTEPS):
    """Linear-beta diffusion over `num_timesteps` respaced by `respacing`."""
    return spaced_diffusion(space_timesteps(num_timesteps, respacing), linear_betas(num_timesteps))


def _f32(arr, i):
    # float64 coefficient read as a float32 scalar tensor, as the official does per step
    return torch.tensor(arr[i], dtype=torch.float64).float()


def _pred_x0(d, i, x, eps):
    return _f32(d.sqrt_recip_alphas_cumprod, i) * x - _f32(d.sqrt_recipm1_alphas_cumprod, i) * eps


def ddpm_step(d, i, x, model_out, learn_sigma, noise):
    """x_{t-1} from x_t at respaced step i: posterior mean of the predicted x0, plus std * noise if i > 0."""
    C = x.shape[1]
    eps = model_out[:, :C]
    x0 = _pred_x0(d, i, x, eps)
    mean = _f32(d.posterior_mean_coef1, i) * x0 + _f32(d.posterior_mean_coef2, i) * x
    if i == 0:
        return mean
    if learn_sigma:
        frac = (model_out[:, C:2 * C] + 1) / 2
        log_var = frac * _f32(d.log_betas, i) + (1 - frac) * _f32(d.posterior_log_variance_clipped, i)
    else:
        log_var = _f32(d.fixed_large_log_variance, i) + torch.zeros_like(x)
    return mean + torch.exp(0.5 * log_var) * noise


def ddim_step(d, i, x, model_out, eta, noise):
    """DDIM x_{t-1} (eq. 12 of Song et al.) with eps re-derived from the predicted x0."""
    C = x.shape[1]
    x0 = _pred_x0(d, i, x, model_out[:, :C])
    eps = (_f32(d.sqrt_recip_alphas_cumprod, i) * x - x0) / _f32(d.sqrt_recipm1_alphas_cumprod, i)
    ab = _f32(d.alphas_cumprod, i)
    ab_prev = _f32(d.alphas_cumprod_prev, i)
    sigma = eta * torch.sqrt((1 - ab_prev) / (1 - ab)) * torch.sqrt(1 - ab / ab_prev)
    out = x0 * torch.sqrt(ab_prev) + torch.sqrt(1 - ab_prev - sigma ** 2) * eps
    if i > 0 and eta > 0:
        out = out + sigma * noise
    return out


def dpmpp2m_coefs(d, i):
    """DPM-Solver++(2M) coefficients (float64) of respaced step i, which goes from abar[i] to abar_prev[i].

    Returns (ratio, phi, c): x_next = ratio * x + phi * D with ratio = sigma_next / sigma_cur,
    phi = -alpha_next (e^{-h} - 1) and D = (1 + c) x0 - c x0_prev, c = 1 / (2 r) (Algorithm 2);
    c is None where the step is first order (D = x0, DPM-Solver++(1), algebraically DDIM with eta 0):
    the first step (i = S-1, no history yet) and the last two: i = 0 goes from t = 0 to sigma = 0
    (lambda = +inf, so r = 0 and 1 / (2r) is undefined), and i = 1 goes into t = 0 (sigma ~ 0.01) with
    a lambda jump several times the previous one, where the linear extrapolation of x0 in lambda
    overshoots (the "lower order final" of common implementations, whose final step goes to sigma = 0).
    """
    ab, ab_next = d.alphas_cumprod[i], d.alphas_cumprod_prev[i]
    alpha_cur, sigma_cur = np.sqrt(ab), np.sqrt(1.0 - ab)
    alpha_next, sigma_next = np.sqrt(ab_next), np.sqrt(1.0 - ab_next)
    ratio = sigma_next / sigma_cur
    # e^{-h} = e^{lambda_cur - lambda_next} = (alpha_cur / sigma_cur) (sigma_next / alpha_next), without log/exp
    # so that it is exactly 0 at sigma_next = 0 (the last step)
    exp_neg_h = ratio * alpha_cur / alpha_next
    phi = alpha_next * (1.0 - exp_neg_h)
    if i <= 1 or i == d.num_timesteps - 1:
        return ratio, phi, None
    lam = lambda a: 0.5 * np.log(a / (1.0 - a))  # lambda = log(alpha / sigma)
    h = lam(ab_next) - lam(ab)
    h_prev = lam(ab) - lam(d.alphas_cumprod[i + 1])  # the step from i + 1 to i
    r = h_prev / h
    return ratio, phi, 1.0 / (2.0 * r)


def dpmpp2m_step(d, i, x, model_out, x0_prev):
    """DPM-Solver++(2M) x_{t-1} at respaced step i; returns (x_next, x0), x0 = this step's data prediction.

    Deterministic and eps-only (variance channels ignored). `x0_prev` is the data prediction of step
    i + 1 (None on the first step); it is ignored where the step is first order (see dpmpp2m_coefs).
    """
    C = x.shape[1]
    x0 = _pred_x0(d, i, x, model_out[:, :C])
    ratio, phi, c = dpmpp2m_coefs(d, i)
    if c is None:
        D = x0
    else:
        if x0_prev is None:
            raise ValueError(f"dpmpp2m step {i}: second-order step without the previous x0")
        cf = torch.tensor(c, dtype=torch.float64).float()
        D = (1 + cf) * x0 - cf * x0_prev
    rf = torch.tensor(ratio, dtype=torch.float64).float()
    pf = torch.tensor(phi, dtype=torch.float64).float()
    return rf * x + pf * D, x0


def guided_output(out, channels, scale, mode):
    """[2N, outC, ...] (conditional rows first) -> guided [N, outC, ...]; other channels from the conditional half."""
    n = out.shape[0] // 2
    cond, uncond = out[:n], out[n:]
    k = min(3, out.shape[1]) if mode == "reference" else channels
    if mode not in ("reference", "standard"):
        raise ValueError(f"unknown cfg mode {mode}")
    mixed = uncond[:, :k] + scale * (cond[:, :k] - uncond[:, :k])
    return torch.cat([mixed, cond[:, k:]], dim=1)


def sample_timesteps(steps, respacing=None):
    """Original timesteps in visiting order (descending) for `steps` steps."""
    d = create_diffusion(str(steps) if respacing is None else respacing)
    return list(reversed(d.timestep_map))


def sample_loop(model_fn, noise, labels, steps, sampler, eta, cfg_scale, cfg_mode, num_classes, learn_sigma,
                step_noises, respacing=None):
    """Runs the whole sampler from x_T = `noise` [N, C, H, W]; returns x_0 [N, C, H, W] (float32).

    model_fn(x, t, y) gets ORIGINAL timesteps (int64 [B]) and labels (int64 [B]); with cfg_scale != 1 it
    sees cat([x, x]) and cat([y, null]) (null = num_classes). step_noises[k] is the noise of step k
    (k = 0 first), read only when that step adds noise.
    """
    d = create_diffusion(str(steps) if respacing is None else respacing)
    assert d.num_timesteps == steps, (d.num_timesteps, steps)
    x = noise.float().clone()
    y = torch.as_tensor(labels, dtype=torch.int64)
    C = x.shape[1]
    x0_prev = None
    with torch.no_grad():
        for k in range(steps):
            i = steps - 1 - k
            t_orig = d.timestep_map[i]
            if cfg_scale != 1:
                xin = torch.cat([x, x])
                yin = torch.cat([y, torch.full_like(y, num_classes)])
            else:
                xin, yin = x, y
            out = model_fn(xin, torch.full((xin.shape[0],), t_orig, dtype=torch.int64), yin)
            if cfg_scale != 1:
                out = guided_output(out, C, cfg_scale, cfg_mode)
            z = step_noises[k] if step_noises is not None and k < len(step_noises) else None
            if sampler == "ddpm":
                x = ddpm_step(d, i, x, out, learn_sigma, z)
            elif sampler == "ddim":
                x = ddim_step(d, i, x, out, eta, z)
            elif sampler == "dpmpp2m":
                x, x0_prev = dpmpp2m_step(d, i, x, out, x0_prev)
            else:
                raise ValueError(f"unknown sampler {sampler}; valid: ddpm, ddim, dpmpp2m")
    return x
