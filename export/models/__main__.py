"""python -m nanolink.export.models: each registered model's size, MAC budget and architecture keys (nanolink-train
--arch KEY=VALUE) with their defaults."""
import argparse
import dataclasses
import sys

from nanolink.export.models import MODELS, budget, build_model


def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m nanolink.export.models', description=__doc__.split('\n')[0])
    p.add_argument('--size', type=int, default=1008, help='square frame side for the MAC count')
    args = p.parse_args(argv)
    for name in sorted(MODELS):
        b = budget(build_model(name), args.size)
        print('{:6s} encoder {:7.0f} MAC/px {:8d} params | decoder {:7.0f} MAC/px {:8d} params'.format(
            name, b['encoder_mac_per_px'], b['encoder_params'], b['decoder_mac_per_px'], b['decoder_params']))
        keys = ['{}={}'.format(f.name, ','.join(str(v) for v in f.default) if isinstance(f.default, tuple)
                               else f.default) for f in dataclasses.fields(MODELS[name].Config)]
        print('       --arch keys: ' + ' '.join(keys))
    return 0


if __name__ == '__main__':
    sys.exit(main())
