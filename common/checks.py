"""The checks of the Python API's arguments (nanolink.Sender, Receiver, open_codec): a value of the wrong type or
out of range is a UsageError naming the argument, as the CLIs' own checks name their flags."""
from nanolink.common.errors import UsageError


def _bounds(low, high):
    return 'in {}..{}'.format(low, high) if high is not None else 'of at least {}'.format(low)


def is_int(value):
    """An integer (Python's or numpy's), not a bool."""
    import numbers
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name, value, low, high=None, optional=False):
    """An integer (not a bool) in low..high (high None: no upper bound), or None where ``optional`` (not given);
    UsageError otherwise."""
    if (value is not None or not optional) and (not is_int(value) or value < low or high is not None and value > high):
        raise UsageError('{} must be an integer {}, got {!r}'.format(name, _bounds(low, high), value))
    return None if value is None else int(value)         # numpy's integers as Python's, which msgpack packs


def check_number(name, value, low, high=None, unit='', above=False, inf_ok=False):
    """A finite number (not a bool) in low..high, over ``low`` where ``above`` (+inf too where ``inf_ok``: no limit),
    as a Python float; UsageError otherwise. unit: words after the bounds (' seconds')."""
    import math
    import numbers
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value)
            or math.isinf(value) and not (inf_ok and value > 0) or value < low
            or above and value == low or high is not None and value > high):
        raise UsageError('{} must be a number {}{}{}, got {!r}'.format(
            name, '> {}'.format(low) if above else _bounds(low, high), unit, ' or inf' if inf_ok else '', value))
    return float(value)


def check_choice(name, value, choices):
    """``value`` one of ``choices``; UsageError listing them otherwise."""
    if value not in choices:
        raise UsageError('{} must be one of {}, got {!r}'.format(name, ', '.join(repr(c) for c in choices), value))
    return value


def check_rate(model, engine, quality, channels, jpeg_quality):
    """The rate arguments of Sender and open_codec: integers, ``quality`` one of the rate points of a bundled
    entropy-coded model (from its manifest, as --quality is checked; an engine file holds its own), none that the
    model would ignore (a classical baseline's quality or channels, raw's jpeg_quality). Returns (quality, channels,
    jpeg_quality), numpy integers as Python's."""
    from nanolink.common import zoo
    channels = check_int('channels', channels, 1, optional=True)
    jpeg_quality = check_int('jpeg_quality', jpeg_quality, 1, 100, optional=True)
    if model in zoo.CLASSICAL and not engine:
        if quality is not None or channels is not None or model == 'raw' and jpeg_quality is not None:
            raise UsageError('model {} is a classical baseline: it takes {}'.format(
                model, 'no rate argument' if model == 'raw' else 'jpeg_quality 1..100, not quality or channels'))
    elif quality is not None and not engine:
        info = zoo.bundled_model(model or zoo.DEFAULT_MODEL)
        if info.dtype == 'rans':
            quality = check_int('quality', quality, min(info.rate_points), max(info.rate_points), optional=True)
    elif quality is not None:
        quality = check_int('quality', quality, 1, optional=True)   # an engine checks its own rate point when it opens
    return quality, channels, jpeg_quality


DECODER_RUNTIMES = ('onnxruntime', 'torch')     # Receiver(decoder=), open_codec(decoder=), host-receiver --decoder


def check_decoder(decoder, device, threads):
    """The decoder arguments of Receiver and open_codec, as host-receiver's --decoder, --device and --threads."""
    from nanolink.common.cli import MAX_THREADS
    check_choice('decoder', decoder, DECODER_RUNTIMES)
    if device is not None:                      # None: the runtime's default, the CPU
        check_choice('device', device, ('cpu', 'cuda'))
    check_int('threads', threads, 0, MAX_THREADS, optional=True)     # None: as 0, one per usable physical core
