"""One interface for the networks on both sides: ONNX Runtime, torch, TensorRT.

    backend = open_backend('cae-enc-k8.onnx', device='cpu')
    out = backend.forward(blob)      # returns when the device has finished (synchronised)
    code = backend.to_host(out)      # device -> host numpy copy (the gpu_to_cpu stage)

``metadata`` holds the model identity stored with the network (ONNX metadata, the TensorRT engine's
sidecar JSON, the torch checkpoint). No silent fallback: asking for CUDA where there is none raises.
"""
import json
import os


from nanolink.common.errors import NanolinkError
from nanolink.common.zoo import METADATA_KEY


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


class OnnxRuntimeBackend(Backend):
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
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(path, opts, providers=providers)
        except Exception as e:   # onnxruntime raises its own unexported exception types
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
    """Runs the torch model from a nanolink checkpoint; role 'encoder' (with channels) or 'decoder'."""
    kind = 'torch'

    def __init__(self, path, role, channels=None, device='cpu'):
        Backend.__init__(self)
        try:
            import torch
            from nanolink.export.onnx_export import load_checkpoint, PackedEncoder
        except ImportError as e:
            raise NanolinkError('the torch backend needs torch ({}): pip install "nanolink[train]"'.format(e))
        if device == 'cuda' and not torch.cuda.is_available():
            raise NanolinkError('--device cuda: torch sees no CUDA device; use --device cpu')
        self.torch = torch
        model, meta = load_checkpoint(path)
        k = channels or model.config.default_channels
        net = PackedEncoder(model, k) if role == 'encoder' else model.decoder_module()
        self.net = net.to(device).eval()
        self.device = device
        self.metadata = {METADATA_KEY: json.dumps(dict(meta, code_channels=k))}

    def forward(self, array):
        torch = self.torch
        with torch.no_grad():
            out = self.net(torch.from_numpy(array).to(self.device))
        if self.device == 'cuda':
            torch.cuda.synchronize()
        return out

    def to_host(self, out):
        return out.cpu().numpy()


def _tensorrt_backend(path, device):
    if device not in (None, 'cuda'):
        raise NanolinkError('--device {}: TensorRT engines run on the GPU; drop --device or use --device cuda, or '
                            'pass an ONNX encoder for the CPU'.format(device))
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        raise NanolinkError('cannot run {}: TensorRT is not installed here (no "tensorrt" Python module). On a '
                            'Jetson use JetPack\'s system python3; elsewhere pass the ONNX encoder instead '
                            '(--engine cae-enc-k8.onnx) or --model cae'.format(path))
    raise NanolinkError('cannot run {}: this nanolink version has no TensorRT runtime yet; use the ONNX encoder '
                        '(--engine cae-enc-k8.onnx) with onnxruntime'.format(path))


ENGINE_KINDS = {'.onnx': 'onnxruntime', '.pt': 'torch', '.pth': 'torch', '.trt': 'tensorrt', '.engine': 'tensorrt'}


def open_backend(path, role, channels=None, device=None, threads=0):
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
        return TorchBackend(path, role, channels, device)
    return OnnxRuntimeBackend(path, device, threads)


