"""nanolink-train's validation: PSNR and MS-SSIM of each rate point over a folder of images, the code's health,
and the learning curve's plot."""
import math

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim import ms_ssim


def psnr_8bit(x, x_hat):
    """PSNR in dB of 8-bit rounded RGB; x, x_hat float in [0, 1] (x_hat is clamped and rounded)."""
    a = torch.round(x * 255.0)
    b = torch.round(x_hat.clamp(0, 1) * 255.0)
    mse = torch.mean((a - b) ** 2).item()
    return float('inf') if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def pad_to(x, multiple):
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph), mode='replicate') if (ph or pw) else x


def validate(model, images):
    """Mean PSNR / MS-SSIM per rate point over the validation images, plus code health (binary codes)."""
    with torch.no_grad():
        return _validate(model, images)


def _validate(model, images):
    model.eval()
    c = model.config
    rows = {k: {'psnr': [], 'ms_ssim': []} for k in c.rate_points}
    flips, balance, bpp = [], [], {k: [] for k in c.rate_points}
    for im in images:
        x = torch.from_numpy(im).permute(2, 0, 1)[None].float() / 255.0
        h, w = x.shape[-2:]
        outs, health = model.rate_outputs(pad_to(x, model.multiple))
        if 'flip_share' in health:
            flips.append(health['flip_share'])
            balance.append(health['balance'])
        for k, v in health.get('bpp', {}).items():
            bpp[k].append(v)
        for k, x_hat in outs.items():
            x_hat = x_hat[..., :h, :w].clamp(0, 1)
            rows[k]['psnr'].append(psnr_8bit(x, x_hat))
            if min(h, w) > 160:                 # 5-scale MS-SSIM needs more than 160 pixels a side
                rows[k]['ms_ssim'].append(ms_ssim(torch.round(x * 255), torch.round(x_hat * 255), data_range=255).item())
    model.train()
    out = {}
    if balance:
        bal = torch.stack(balance).mean(0)
        out = {'flip_share': float(np.mean(flips)), 'balance_min': bal.min().item(), 'balance_max': bal.max().item()}
    for k in c.rate_points:
        out['psnr_{}{}'.format(model.rate_prefix, k)] = float(np.mean(rows[k]['psnr']))
        out['msssim_{}{}'.format(model.rate_prefix, k)] = float(np.mean(rows[k]['ms_ssim'])) if rows[k]['ms_ssim'] \
            else None
        if bpp[k]:
            out['bpp_{}{}'.format(model.rate_prefix, k)] = float(np.mean(bpp[k]))
    return out


def plot_curve(rows, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    steps = [r['step'] for r in rows]
    for key in sorted(k for k in rows[0] if k.startswith('psnr_')):
        a.plot(steps, [r[key] for r in rows], label=key.replace('psnr_', ''))
    a.set_xlabel('step'); a.set_ylabel('validation PSNR (dB)'); a.legend(); a.grid(alpha=.3)
    b.plot(steps, [r['train_loss'] for r in rows], label='train loss')
    if 'flip_share' in rows[0]:
        b.plot(steps, [r['flip_share'] for r in rows], label='flip share')
    b.set_xlabel('step'); b.legend(); b.grid(alpha=.3)
    fig.tight_layout(); fig.savefig(path, dpi=100); plt.close(fig)
