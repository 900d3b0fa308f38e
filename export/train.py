"""Train a nanolink codec on a folder of images (``nanolink-train``).

    nanolink-train --model cae --data ../shared/data/train --val ../shared/data/kodak \
        --steps 40000 --out runs/cae            # resumes from runs/cae/last.pt if it exists

Loss: alpha * (1 - MS-SSIM) + (1 - alpha) * L1 (Zhao et al. 2017 mix; alpha=1 is pure MS-SSIM,
``--l2`` swaps L1 for MSE). Each model draws its own training rate (``train_output``): ``cae-bin``
truncates the code to a random rate point so that the first k channels decode on their own, with a stochastic
binariser for the first ``--stochastic-frac`` of the steps; ``ae`` codes its code image with real JPEG at
a random quality (straight-through gradient). Rate-distortion models define their own loss (``train_loss``):
``cae`` minimises lambda * 255^2 * MSE + bits per pixel under its learned prior, a quality drawn per sample
(``--alpha`` does not apply); train it with ``--crop 128 --clip 1``.

Every ``--val-every`` steps the model is evaluated on the validation folder (PSNR on rounded 8-bit RGB and
MS-SSIM at each rate point) and the code's health is logged: share of bits that a stochastic draw flips
relative to the deterministic code (near 0 = saturated codes) and per-channel bit balance (a channel
stuck at 0 or 1 carries nothing). Rows go to ``val.csv`` / ``val.jsonl`` and ``curve.png``.
"""
import argparse
import csv
import dataclasses
import json
import math
import os
import pickle
import random
import sys
import time
from typing import Tuple

from nanolink.common import cli as cliutil
from nanolink.common import zoo
from nanolink.common.errors import NanolinkError, UsageError
from nanolink.export.train_data import CropSampler, list_images, load_rgb
try:                                    # --help works without the training extras; main() says what to install
    import torch
    import torch.nn.functional as F
    from pytorch_msssim import ms_ssim
    from tqdm import tqdm
    from nanolink.export.models import MODELS, build_model
    from nanolink.export.model_io import load_checkpoint, stored_config, torch_load
    from nanolink.export.validation import plot_curve, validate
    MISSING = None
except ImportError as e:
    MISSING, MODELS = e, {}


@dataclasses.dataclass
class TrainConfig:
    model: str = 'cae'
    data: str = ''                       # folder of training images (searched recursively); required
    val: str = ''                        # validation folder, e.g. Kodak ('': no validation)
    out: str = 'runs/cae'                # checkpoints, logs and plots
    init: str = ''                       # start from these weights (a checkpoint), fresh optimiser
    steps: int = 40000                   # optimiser steps in total
    batch: int = 8
    crop: int = 192                      # training crop side (MS-SSIM needs > 160)
    lr: float = 1e-3                     # peak learning rate (cosine decay to lr / 50)
    alpha: float = 0.84                  # weight of (1 - MS-SSIM) in the loss
    l2: bool = False                     # mix MSE instead of L1
    stochastic_frac: float = 0.7         # share of steps with the stochastic binariser
    min_scale: float = 0.6               # random downscale of the source before cropping
    val_every: int = 2000
    ckpt_every: int = 500
    seed: int = 0
    threads: int = 2
    train_only: str = ''                 # 'decoder': freeze the encoder (alternating optimisation, Jiang 2017);
                                         # 'post': train a quality decoder's post-filter alone (all else frozen)
    arch: Tuple[str, ...] = ()           # model Config overrides, e.g. ('dec_width=16', 'dec_layers=2')
    clip: float = 0.0                    # gradient norm clipping (0: none)
    schedule: str = 'cosine'             # learning rate: cosine (to lr / 50 at --steps) | constant
    decay_from: int = 0                  # cosine: hold lr until this step, then decay to lr / 50 at --steps


HELP = {
    'data': 'folder of training images, searched recursively (required; this project trained on BSDS500 + '
            'Waterloo + McMaster, docs/quality.md)',
    'val': 'validation folder, e.g. the 24 Kodak photos (empty: no validation)',
    'out': 'run folder: last.pt (checkpoint, resumed automatically), val.csv, val.jsonl, curve.png',
    'init': 'start from the weights and architecture of this checkpoint (fresh optimiser; --arch changes the '
            'architecture on top); ignored when OUT/last.pt exists, which a run resumes with its own architecture',
    'steps': 'optimiser steps in total',
    'batch': 'crops per step',
    'crop': 'training crop side in pixels (> 160 when --alpha > 0: 5-scale MS-SSIM)',
    'lr': 'peak learning rate (cosine decay to lr / 50)',
    'alpha': 'weight of (1 - MS-SSIM) in the loss; the rest is L1 (or MSE with --l2)',
    'l2': 'mix MSE instead of L1',
    'stochastic_frac': 'cae-bin: share of steps with the stochastic binariser',
    'min_scale': 'random downscale of the source image before cropping (lower bound)',
    'val_every': 'steps between validations',
    'ckpt_every': 'steps between checkpoints',
    'seed': 'random seed (crops, flips, rates, initialisation)',
    'threads': 'torch CPU threads',
    'train_only': '"decoder": train the decoder only, encoder frozen; "post": train only the post-filter of a '
                  'quality decoder (--arch post=W,B), the rest frozen, so the variant can share the fast '
                  'decoder\'s weights (nanolink-export --decoder-variant)',
    'arch': 'model architecture override KEY=VALUE, repeatable (e.g. dec_width=16; tuples as 32,24, empty as '
            'KEY=; true/false), on top of the --init or resumed checkpoint\'s; the keys are the model Config fields, '
            'printed by python -m nanolink.export.models',
    'clip': 'clip the gradient norm to this (0: no clipping)',
    'schedule': 'learning rate schedule: cosine (decays to lr / 50 at --steps) or constant',
    'decay_from': 'with --schedule cosine: keep --lr until this step, then decay (a run resumed for its last phase)',
}


def usage_error(message):
    """A bad argument: one line on stderr, exit status 2 (as argparse and every nanolink CLI)."""
    print('nanolink-train: error: {}'.format(message), file=sys.stderr)
    raise SystemExit(2)


def check_config(cfg):
    """Every number of TrainConfig in its range, --schedule, --train-only and --out: a UsageError naming the option,
    before torch is needed and before any image is loaded or any folder made."""
    for name in ('steps', 'batch', 'crop', 'val_every', 'ckpt_every'):
        cliutil.check_at_least_one('--' + name.replace('_', '-'), getattr(cfg, name))
    cliutil.check_range('--threads', cfg.threads, 1, cliutil.MAX_THREADS)
    cliutil.check_at_least('--decay-from', cfg.decay_from, 0)
    cliutil.check_range('--seed', cfg.seed, -2 ** 63, 2 ** 64 - 1)          # what torch.manual_seed takes
    cliutil.check_range('--alpha', cfg.alpha, 0, 1)
    cliutil.check_range('--stochastic-frac', cfg.stochastic_frac, 0, 1)
    if not 0 < cfg.lr < float('inf'):
        raise UsageError('--lr must be a number > 0, got {}'.format(cfg.lr))
    if not 0 < cfg.min_scale <= 1:
        raise UsageError('--min-scale must be in (0, 1] (1: no downscaling), got {}'.format(cfg.min_scale))
    if not 0 <= cfg.clip < float('inf'):
        raise UsageError('--clip must be >= 0 (0: no clipping), got {}'.format(cfg.clip))
    if cfg.schedule not in ('cosine', 'constant'):
        raise UsageError('--schedule must be cosine or constant, got "{}"'.format(cfg.schedule))
    if cfg.train_only not in ('', 'decoder', 'post'):
        raise UsageError('--train-only must be "decoder", "post" or empty, got "{}"'.format(cfg.train_only))
    cliutil.check_output_folder('--out', cfg.out)


BOOLS = {'true': True, '1': True, 'yes': True, 'false': False, '0': False, 'no': False}


def arch_overrides(model, items):
    """['dec_width=16', 'enc_widths=32,24'] -> {field: typed value} for model's Config; exit status 2 on a bad one."""
    fields = {f.name: f for f in dataclasses.fields(MODELS[model].Config)}
    out = {}
    for item in items:
        key, sep, text = item.partition('=')
        if not sep or key not in fields:
            usage_error('--arch {}: use KEY=VALUE with KEY one of {}'.format(
                item, ', '.join(sorted(fields))))
        default = fields[key].default
        try:
            if isinstance(default, bool):
                if text.lower() not in BOOLS:
                    raise ValueError(text)
                out[key] = BOOLS[text.lower()]
            elif isinstance(default, tuple):
                kind = type(default[0]) if default else int
                out[key] = tuple(kind(v) for v in text.split(',')) if text else ()
            else:
                out[key] = type(default)(text)
        except ValueError:
            usage_error('--arch {}: {} must be {}'.format(
                item, key, 'comma-separated integers' if isinstance(default, tuple) else
                'true or false' if isinstance(default, bool) else type(default).__name__))
    return out


def compact_optimizer_state(state):
    """The optimiser's state dict with its floating-point moment tensors as bfloat16: a third smaller checkpoint
    (float32 weights + two bfloat16 moments, 8 bytes a parameter instead of 12), so the resumable checkpoint of a
    ~1 M-parameter model stays within the 10 MB the repository carries. bfloat16 keeps float32's exponent range
    (exp_avg_sq reaches 1e-12 and below) with 8 bits of mantissa; torch's Optimizer.load_state_dict casts the
    moments back to the parameters' float32. Resuming is therefore not bit-exact, a one-off relative error of
    ~0.4 % in the moments; the weights themselves are saved exactly."""
    out = {'param_groups': state['param_groups'], 'state': {}}
    for key, slots in state['state'].items():
        out['state'][key] = {name: (v.to(torch.bfloat16) if torch.is_tensor(v) and v.is_floating_point()
                                    and v.dim() > 0 else v) for name, v in slots.items()}
    return out


def read_start(path, model_name, resume):
    """The checkpoint dict a run starts from (--init, or the run's last.pt when resuming), read once; a file that
    is not a checkpoint of model_name ends the run with a line naming the fix."""
    what = 'resume from' if resume else 'start from (--init)'
    try:
        ck = torch_load(path)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError, NanolinkError) as e:
        raise SystemExit('nanolink-train: error: cannot {} {}: {}'.format(
            what, path, (str(e).splitlines() or [''])[0][:200]))
    held = ck.get('model_name') if isinstance(ck, dict) else None
    if held != model_name:
        raise SystemExit('nanolink-train: error: cannot {} {}: it holds {}, not a {} model: {}'.format(
            what, path, 'a {} model'.format(held) if held else 'no nanolink model', model_name,
            'pass --model {}'.format(held) if held else 'give a checkpoint of nanolink-train or nanolink-export')
            + (' or another --out' if resume else ' or another --init'))
    return ck


def checkpoint_config(ck, resume):
    """The architecture (Config fields) of the checkpoint dict a run starts from, which --arch then overrides: so a
    narrowed or widened checkpoint trains on without repeating its widths. Resuming (the run's last.pt) takes all of
    its fields; a new run (--init) leaves out the model's ``run_fields`` (how a run trains and exports, e.g. cae's
    train_rates: its own --arch or the defaults say those)."""
    cls = MODELS[ck['model_name']]
    fields = {f.name for f in dataclasses.fields(cls.Config)} - set(() if resume else getattr(cls, 'run_fields', ()))
    return {k: v for k, v in stored_config(ck).items() if k in fields}


def _first_error(e):
    """The first specific line of load_state_dict's error (the line after its 'Error(s) in loading' header)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[1] if len(lines) > 1 else (lines or [''])[0])[:200]


def trainable(model, train_only):
    """The parameters --train-only leaves to the optimiser; the others stop needing gradients, so the frozen part
    runs without a backward pass ('decoder': the encoder, gains and priors; 'post': all but the post-filter)."""
    if train_only == '':
        return list(model.parameters())
    if train_only == 'decoder':
        part = model.decoder
    elif train_only == 'post':
        part = getattr(getattr(model, 'decoder', None), 'post', None)
        if part is None:
            usage_error('--train-only post needs a model with a post-filter: add --arch post=WIDTH,BLOCKS '
                        '(e.g. post=48,2; model cae)')
    else:
        usage_error('--train-only must be "decoder", "post" or empty, got "{}"'.format(train_only))
    for p in model.parameters():
        p.requires_grad_(False)
    for p in part.parameters():
        p.requires_grad_(True)
    return list(part.parameters())


def save_checkpoint(path, model, opt, step, rng, cfg):
    tmp = path + '.tmp'
    torch.save({'model': model.state_dict(), 'opt': compact_optimizer_state(opt.state_dict()), 'step': step,
                'model_name': model.model_name, 'model_config': dataclasses.asdict(model.config),
                'train_config': dataclasses.asdict(cfg), 'py_rng': rng.getstate(),
                'torch_rng': torch.get_rng_state()}, tmp)
    os.replace(tmp, path)


def train(cfg):
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    rng = random.Random(cfg.seed)
    paths = list_images(cfg.data)                # both folders listed before OUT is made
    val_paths = list_images(cfg.val, '--val') if cfg.val else []
    ckpt_path = os.path.join(cfg.out, 'last.pt')
    resume = os.path.exists(ckpt_path)
    start = ckpt_path if resume else cfg.init
    ck = read_start(start, cfg.model, resume) if start else None
    model = build_model(cfg.model, **dict(checkpoint_config(ck, resume) if ck else {},
                                          **arch_overrides(cfg.model, cfg.arch)))
    params = trainable(model, cfg.train_only)
    opt = torch.optim.Adam(params, lr=cfg.lr)
    step = 0
    sampler = CropSampler([load_rgb(p) for p in paths], cfg.crop, cfg.min_scale, rng)
    val_images = [load_rgb(p) for p in val_paths]
    os.makedirs(cfg.out, exist_ok=True)             # once the arguments, the start checkpoint and the images stand
    if cfg.init and not resume:
        if ck.get('base'):                          # a decoder variant's filter on NAME.pt: join them first
            try:
                joined, _ = load_checkpoint(cfg.init)
            except NanolinkError as e:
                raise SystemExit('nanolink-train: error: --init {}: {}'.format(cfg.init, e))
            ck = {'model': joined.state_dict(), 'model_config': dataclasses.asdict(joined.config)}
        try:
            if hasattr(model, 'load_init'):         # e.g. cae: fork new rate points, widen the latents
                model.load_init(ck['model'], ck.get('model_config'), sample=lambda: sampler.batch(64))
            else:
                model.load_state_dict(ck['model'])
        except ValueError as e:
            raise SystemExit('nanolink-train: error: --init {}: {}'.format(cfg.init, e))
        except RuntimeError as e:                   # load_state_dict: shapes or parts the --arch changed
            raise SystemExit('nanolink-train: error: --init {} does not fit the model --arch asks for ({}): a run '
                             'takes the checkpoint\'s architecture; --arch can grow it (channels, rate points, a '
                             'post-filter), not change its widths'.format(cfg.init, _first_error(e)))
        print('initialised from {}'.format(cfg.init), flush=True)
    if resume:
        try:
            model.load_state_dict(ck['model'])
        except RuntimeError as e:
            raise SystemExit('nanolink-train: error: {} does not fit the model --arch asks for ({}): resume without '
                             '--arch (a run keeps its architecture) or train into another --out'.format(
                                 ckpt_path, _first_error(e)))
        opt.load_state_dict(ck['opt'])
        step = ck['step']; rng.setstate(ck['py_rng']); torch.set_rng_state(ck['torch_rng'])
        print('resumed from {} at step {}'.format(ckpt_path, step), flush=True)
        if step >= cfg.steps:
            print('nanolink-train: {} is at step {}, --steps {}: nothing to train (a larger --steps trains on)'
                  .format(ckpt_path, step, cfg.steps), file=sys.stderr)
    if step == 0 and not cfg.init and hasattr(model, 'data_init'):
        model.data_init(sampler.batch(64))          # e.g. cae: first layer from a PCA of image patches
    log_rows = []
    jsonl = os.path.join(cfg.out, 'val.jsonl')
    if os.path.exists(jsonl):
        with open(jsonl) as f:
            log_rows = [json.loads(line) for line in f if line.strip()]
    model.train()
    bar = tqdm(total=cfg.steps, initial=step, desc='train ' + cfg.model, mininterval=30)
    loss_avg = None
    while step < cfg.steps:
        lr = cfg.lr
        if cfg.schedule == 'cosine' and step >= cfg.decay_from:
            t = (step - cfg.decay_from) / float(max(1, cfg.steps - cfg.decay_from))
            lr = cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))
        for g in opt.param_groups:
            g['lr'] = lr
        x = sampler.batch(cfg.batch)
        if hasattr(model, 'train_loss'):            # rate-distortion models (cae): lambda * MSE + bpp
            loss, extra = model.train_loss(x, step / cfg.steps)
        else:
            x_hat = model.train_output(x, step / cfg.steps, cfg.stochastic_frac)
            dist = F.mse_loss(x_hat, x) if cfg.l2 else F.l1_loss(x_hat, x)
            loss = (1 - cfg.alpha) * dist
            if cfg.alpha > 0:
                loss = loss + cfg.alpha * (1 - ms_ssim(x_hat.clamp(0, 1), x, data_range=1.0))
            extra = {}
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        step += 1
        loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
        bar.update(1)
        bar.set_postfix(loss='{:.4f}'.format(loss_avg), lr='{:.1e}'.format(lr), refresh=False,
                        **{k: '{:.4g}'.format(v) for k, v in extra.items()})
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            save_checkpoint(ckpt_path, model, opt, step, rng, cfg)
        if val_images and (step % cfg.val_every == 0 or step == cfg.steps):
            row = {'step': step, 'time': time.time(), 'train_loss': loss_avg, 'lr': lr}
            row.update(validate(model, val_images))
            log_rows.append(row)
            with open(jsonl, 'a') as f:
                f.write(json.dumps(row) + '\n')
            with open(os.path.join(cfg.out, 'val.csv'), 'w', newline='') as f:
                wr = csv.DictWriter(f, fieldnames=list(log_rows[-1]))
                wr.writeheader(); wr.writerows(log_rows)
            plot_curve(log_rows, os.path.join(cfg.out, 'curve.png'))
            tqdm.write(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}))
    bar.close()
    return model


def parse_args(argv):
    p = argparse.ArgumentParser(prog='nanolink-train', description=__doc__.split('\n')[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = TrainConfig()
    p.add_argument('--model', default=d.model, choices=sorted(MODELS or zoo.bundled_models()), help='model to train')
    for f in dataclasses.fields(TrainConfig):
        if f.name == 'model':
            continue
        flag = '--' + f.name.replace('_', '-')
        if f.name == 'arch':
            p.add_argument(flag, action='append', default=[], metavar='KEY=VALUE', help=HELP[f.name])
        elif f.type is bool or isinstance(f.default, bool):
            p.add_argument(flag, action='store_true', default=f.default, help=HELP[f.name])
        elif f.name == 'data':
            p.add_argument(flag, required=True, metavar='DIR', default=argparse.SUPPRESS, help=HELP[f.name])
        else:
            p.add_argument(flag, type=type(f.default), default=f.default, help=HELP[f.name])
    args = p.parse_args(argv)
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    cfg.arch = tuple(cfg.arch)
    return cfg


def main(argv=None):
    cfg = parse_args(argv)
    try:
        check_config(cfg)
    except UsageError as e:
        return cliutil.fail('nanolink-train', e)
    if MISSING is not None:
        return cliutil.torch_missing('nanolink-train', MISSING)
    arch_overrides(cfg.model, cfg.arch)          # fail on a bad --arch before loading any image
    if cfg.crop <= 160 and cfg.alpha > 0 and not hasattr(MODELS[cfg.model], 'train_loss'):
        usage_error('--crop must be > 160 for 5-scale MS-SSIM (or --alpha 0), got {}'.format(cfg.crop))
    multiple = MODELS[cfg.model].multiple
    if cfg.crop < multiple or cfg.crop % multiple:
        usage_error('--crop must be a multiple of {} for {} (its latents are at 1/{} scale), got {}: try --crop '
                    '{}'.format(multiple, cfg.model, getattr(MODELS[cfg.model], 'stride', multiple), cfg.crop,
                                max(multiple, cfg.crop // multiple * multiple)))
    try:
        train(cfg)
    except NanolinkError as e:                   # the images: a missing or empty folder, a file OpenCV cannot read
        return cliutil.fail('nanolink-train', e)
    return 0


if __name__ == '__main__':
    sys.exit(main())
