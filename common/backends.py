"""One interface for the networks on both sides: ONNX Runtime, torch, TensorRT.

    backend = open_backend('cae-enc-q3.onnx', device='cpu')
    out = backend.forward(blob)      # returns when the device has finished (synchronised)
    code = backend.to_host(out)      # device -> host numpy copy (the gpu_to_cpu stage)

``metadata`` holds the model identity stored with the network (ONNX metadata, the TensorRT engine's
sidecar JSON, the torch checkpoint). No silent fallback: asking for CUDA where there is none raises.
"""
import json
import os

import numpy as np


from nanolink.common.cpus import cpu_threads
from nanolink.common.errors import NanolinkError
from nanolink.common.zoo import METADATA_KEY, WEIGHTS_DIR


class Backend(object):
    """Base class: one input, one output."""
    kind = ''

    def __init__(self):
        self.metadata = {}
        self.device = 'cpu'

    def forward(self, array):
        raise NotImplementedError

    def to_host(self, out):
        raise NotImplementedError

    def run(self, array):
        return self.to_host(self.forward(array))

    def close(self):
        pass


def ort_errors():
    """The exceptions onnxruntime raises when a session cannot be made: its own types (Fail, InvalidProtobuf,
    NoSuchFile, ...: which exist depends on its version, so they are read from its module), and RuntimeError,
    ValueError and OSError, which some versions raise instead."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state
    own = tuple(c for c in vars(state).values() if isinstance(c, type) and issubclass(c, Exception))
    return own + (RuntimeError, ValueError, OSError)


class OnnxRuntimeBackend(Backend):
    """An ONNX model on ONNX Runtime. On the CPU it runs on ``threads`` threads (0: one per physical core this
    process may use, ``nanolink.common.cpus.cpu_threads``; ONNX Runtime's own default outside Linux), not pinned
    to cores, and they do not spin while idle. ONNX Runtime 1.32's own default pins its workers to cores but not the
    calling thread, and keeps them spinning after each run: on this 2-core machine a process then ran the fast
    decoder at about 30 ms or about 42 ms (3 of 8 processes slow; the encoders 20 or 25 ms), by where the scheduler
    put the calling thread, and a second session in the process, or a second process, lost its cores to the
    spinning. Set this way, 8 of 8 processes ran it at 29-31 ms (2026-12-07, the same bundle). (ONNX Runtime 1.10,
    the newest for Python 3.6, defaults to half the machine's logical CPUs, ignoring the affinity mask: one thread
    here, where this sets two; not timed on a Jetson, whose encoder is normally a TensorRT engine.)"""
    kind = 'onnxruntime'

    def __init__(self, path, device='cpu', threads=0):
        Backend.__init__(self)
        try:
            import onnxruntime as ort
        except ImportError:
            raise NanolinkError('onnxruntime is not installed: pip install onnxruntime (onnxruntime-gpu for CUDA)')
        providers = ['CPUExecutionProvider']
        if device == 'cuda':
            if 'CUDAExecutionProvider' not in ort.get_available_providers():
                raise NanolinkError('--device cuda: this onnxruntime has no CUDA provider (has {}); install '
                                    'onnxruntime-gpu with a matching CUDA, or use --device cpu'.format(
                                        ', '.join(ort.get_available_providers())))
            providers = ['CUDAExecutionProvider']
        elif device != 'cpu':
            raise NanolinkError('unknown device "{}", should be cpu or cuda'.format(device))
        opts = ort.SessionOptions()
        threads = threads or cpu_threads()
        if threads:
            opts.intra_op_num_threads = threads
        opts.add_session_config_entry('session.intra_op.allow_spinning', '0')
        try:
            self.session = ort.InferenceSession(path, opts, providers=providers)
        except ort_errors() as e:
            raise NanolinkError('cannot load ONNX model {}: {}'.format(path, str(e).splitlines()[0][:300]))
        self.device = device
        self.input_name = self.session.get_inputs()[0].name
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def forward(self, array):
        # session.run returns host arrays: with the CUDA provider its copy back is inside this call.
        return self.session.run(None, {self.input_name: array})[0]

    def to_host(self, out):
        return out


class TorchBackend(Backend):
    """Runs the torch model from a nanolink checkpoint; role 'encoder' (with channels) or 'decoder'. On torch older
    than 1.13 only the bundled checkpoints, or ``trust``ed ones, are loaded (unpickling can run code)."""
    kind = 'torch'

    def __init__(self, path, role, channels=None, device='cpu', trust=False):
        Backend.__init__(self)
        try:
            import torch
            from nanolink.export.model_io import load_checkpoint
        except ImportError as e:
            raise NanolinkError('the torch backend needs torch ({}): pip install "nanolink[train]"'.format(e))
        if device == 'cuda' and not torch.cuda.is_available():
            raise NanolinkError('--device cuda: torch sees no CUDA device; use --device cpu')
        self.torch = torch
        from nanolink.export.onnx_export import encoder_identity
        bundled = os.path.abspath(path).startswith(os.path.abspath(WEIGHTS_DIR) + os.sep)
        model, meta = load_checkpoint(path, trusted=trust or bundled)
        net = model.encoder_module(channels) if role == 'encoder' else model.decoder_module()
        self.net = net.to(device).eval()
        self.device = device
        if role == 'encoder' or meta['dtype'] == 'bits':   # its rate point (and rANS tables), as an exported
            meta = encoder_identity(model, channels or model.config.default_channels)   # encoder carries
        self.metadata = {METADATA_KEY: json.dumps(meta)}

    def forward(self, array):
        torch = self.torch
        with torch.no_grad():
            out = self.net(torch.from_numpy(array).to(self.device))
        if self.device == 'cuda':
            torch.cuda.synchronize()
        return out

    def to_host(self, out):
        return out.cpu().numpy()


def _rebuild_hint(path):
    onnx = os.path.splitext(path)[0] + '.onnx'
    return ('rebuild it on this device: trtexec --onnx={} --saveEngine={} --fp16 (trtexec is in '
            '/usr/src/tensorrt/bin on JetPack)'.format(onnx, path))


class TensorRTBackend(Backend):
    """A serialised TensorRT engine with one input and one output, on the GPU of this thread.

    All TensorRT-version differences live here, branched once: before 8.5 binding indices and
    ``execute_async_v2``; from 8.5 (and 10.x, which drops the old calls) named tensors and
    ``execute_async_v3``. Buffers come from pycuda: a context made, used and freed by the thread that
    constructs the backend (pycuda contexts belong to one thread), pinned host memory for the copies.
    The model identity is read from ``<engine>.json`` written beside the engine when it was built.
    """
    kind = 'tensorrt'

    def __init__(self, path):
        Backend.__init__(self)
        try:
            import tensorrt as trt
        except ImportError:
            raise NanolinkError('cannot run {}: TensorRT is not installed here (no "tensorrt" Python module). On '
                                'a Jetson use JetPack\'s system python3; elsewhere drop --engine and pass the bundled '
                                'model (--model cae), or its ONNX encoder (--engine {})'.format(
                                    path, os.path.join(WEIGHTS_DIR, 'cae', 'cae-enc-q3.onnx')))
        try:
            import pycuda.driver as cuda
        except ImportError:
            raise NanolinkError('cannot run {}: pycuda is not installed (python3 -m pip install pycuda; see '
                                'deploy/jetson/README.md)'.format(path))
        sidecar = path + '.json'
        if not os.path.isfile(sidecar):
            raise NanolinkError('{} has no {} beside it naming the model it encodes: copy it from where the engine '
                                'was built, or {}'.format(path, os.path.basename(sidecar), _rebuild_hint(path)))
        with open(sidecar) as f:
            self.metadata = {METADATA_KEY: f.read()}
        self.path = path
        self.trt, self.cuda = trt, cuda
        self.device = 'cuda'
        major, minor = (int(v) for v in trt.__version__.split('.')[:2])
        self._named = (major, minor) >= (8, 5)
        cuda.init()
        self._ctx = cuda.Device(0).make_context()
        try:
            runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            with open(path, 'rb') as f:
                self.engine = runtime.deserialize_cuda_engine(f.read())
            if self.engine is None:
                raise NanolinkError('{} was built for another TensorRT version or GPU (TensorRT {} here): {}'.format(
                    path, trt.__version__, _rebuild_hint(path)))
            self.context = self.engine.create_execution_context()
            self.stream = cuda.Stream()
            if self._named:
                names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
                is_input = [self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names]
                dtypes = [trt.nptype(self.engine.get_tensor_dtype(n)) for n in names]
            else:
                names = list(range(self.engine.num_bindings))
                is_input = [self.engine.binding_is_input(i) for i in names]
                dtypes = [trt.nptype(self.engine.get_binding_dtype(i)) for i in names]
            if len(names) != 2 or sum(is_input) != 1:
                raise NanolinkError('{}: expected one input and one output, found {}'.format(path, len(names)))
            i_in = is_input.index(True)
            self._in, self._out = names[i_in], names[1 - i_in]
            self._in_dtype, self._out_dtype = dtypes[i_in], dtypes[1 - i_in]
            self._shape = None
        except BaseException:
            self._ctx.pop()
            raise

    def _allocate(self, shape):
        cuda, ctx = self.cuda, self.context
        if self._named:
            ok = ctx.set_input_shape(self._in, shape)
            out_shape = tuple(ctx.get_tensor_shape(self._out))
        else:
            ok = ctx.set_binding_shape(self._in, shape)
            out_shape = tuple(ctx.get_binding_shape(self._out))
        if ok is False or min(out_shape) < 1:
            raise NanolinkError('{}: the engine takes frames of {} (N, C, H, W), this one is {}: rebuild it for this '
                                'size (nanolink-build-engine --shape {}), or resize frames to the engine\'s with '
                                'edge-sender --size WxH'.format(self.path, self._profile(), list(shape),
                                                               'x'.join(str(v) for v in shape)))
        self._h_in = cuda.pagelocked_empty(shape, self._in_dtype)
        self._h_out = cuda.pagelocked_empty(out_shape, self._out_dtype)
        self._d_in, self._d_out = cuda.mem_alloc(self._h_in.nbytes), cuda.mem_alloc(self._h_out.nbytes)
        if self._named:
            ctx.set_tensor_address(self._in, int(self._d_in))
            ctx.set_tensor_address(self._out, int(self._d_out))
        else:
            self._bindings = [0, 0]
            self._bindings[self._in], self._bindings[self._out] = int(self._d_in), int(self._d_out)
        self._shape = tuple(shape)

    def forward(self, array):
        if tuple(array.shape) != self._shape:
            self._allocate(tuple(array.shape))
        np.copyto(self._h_in, array, casting='same_kind')
        self.cuda.memcpy_htod_async(self._d_in, self._h_in, self.stream)
        if self._named:
            ok = self.context.execute_async_v3(stream_handle=self.stream.handle)
        else:
            ok = self.context.execute_async_v2(bindings=self._bindings, stream_handle=self.stream.handle)
        self.stream.synchronize()                     # the encode stage ends when the GPU is done
        if not ok:
            raise NanolinkError('TensorRT failed to run the engine on a {} input'.format(list(array.shape)))
        return self._d_out

    def to_host(self, out):
        self.cuda.memcpy_dtoh_async(self._h_out, out, self.stream)
        self.stream.synchronize()
        return self._h_out

    def _profile(self):
        """The input shape(s) the engine was built for, as text."""
        try:
            if self._named:
                shapes = self.engine.get_tensor_profile_shape(self._in, 0)
            else:
                shapes = self.engine.get_profile_shape(0, self._in)
            return ' .. '.join(str(list(s)) for s in sorted(set(tuple(s) for s in shapes)))
        except (AttributeError, RuntimeError, TypeError, ValueError):
            return 'another size'

    def close(self):
        """Free the TensorRT objects and device buffers while this context is current, then pop and destroy it
        (pycuda aborts at exit, "context stack was not empty", when a made context is never popped)."""
        if getattr(self, '_ctx', None) is None:
            return
        try:
            for buf in (getattr(self, '_d_in', None), getattr(self, '_d_out', None)):
                if buf is not None:
                    buf.free()
            self._d_in = self._d_out = None
            self.context = self.engine = self.stream = None
        finally:
            self._ctx.pop()
            self._ctx.detach()
            self._ctx = None


def _tensorrt_backend(path, device):
    if device not in (None, 'cuda'):
        raise NanolinkError('--device {}: TensorRT engines run on the GPU; drop --device or use --device cuda, or '
                            'pass an ONNX encoder for the CPU'.format(device))
    return TensorRTBackend(path)


ENGINE_KINDS = {'.onnx': 'onnxruntime', '.pt': 'torch', '.pth': 'torch', '.trt': 'tensorrt', '.engine': 'tensorrt'}


def open_backend(path, role, channels=None, device=None, threads=0, trust=False):
    """Open a network file by its extension (.onnx, .pt, .trt/.engine) on device 'cpu' or 'cuda'.

    device None means the file's natural device: the GPU for TensorRT engines, the CPU otherwise.
    """
    ext = os.path.splitext(path)[1].lower()
    if ext not in ENGINE_KINDS:
        raise NanolinkError('{}: unknown network file type "{}"; use .onnx (onnxruntime), .pt (torch) or '
                            '.trt/.engine (TensorRT)'.format(path, ext))
    kind = ENGINE_KINDS[ext]
    if not os.path.isfile(path):
        if kind == 'tensorrt':
            raise NanolinkError('no such engine file: {}. TensorRT engines are built on the device that runs them '
                                'from the exported ONNX encoder (see deploy/jetson/README.md); without one, drop '
                                '--engine to run the bundled ONNX encoder (--model cae)'.format(path))
        raise NanolinkError('no such file: {}'.format(path))
    if kind == 'tensorrt':
        return _tensorrt_backend(path, device)
    device = device or 'cpu'
    if kind == 'torch':
        return TorchBackend(path, role, channels, device, trust)
    return OnnxRuntimeBackend(path, device, threads)


