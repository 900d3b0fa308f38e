"""Edits of exported ONNX graphs: byte casts torch adds around Concat, and weights shared between files."""
import os

from nanolink.common.errors import NanolinkError


def drop_byte_concat_casts(path):
    """torch's exporter widens uint8 tensors to int64 around every Concat and narrows the result back; both
    casts are exact no-ops on bytes and cost a full-frame pass each (the decoders' DisplayBytes). Remove them
    where shape inference proves every widened input is uint8 and the only consumer narrows to uint8."""
    import onnx
    from onnx import TensorProto
    m = onnx.load(path)
    g = m.graph
    types = {v.name: v.type.tensor_type.elem_type
             for v in list(onnx.shape_inference.infer_shapes(m).graph.value_info) + list(g.input) + list(g.output)}
    producer = {o: n for n in g.node for o in n.output}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def cast_to(node, dtype):
        return node is not None and node.op_type == 'Cast' and node.attribute[0].i == dtype

    graph_outputs = {o.name for o in g.output}
    drop, rename = set(), {}
    for n in g.node:
        if n.op_type != 'Concat':
            continue
        ins = [producer.get(i) for i in n.input]
        outs = consumers.get(n.output[0], [])
        if (all(cast_to(p, TensorProto.INT64) and types.get(p.input[0]) == TensorProto.UINT8
                and len(consumers[p.output[0]]) == 1 for p in ins)
                and len(outs) == 1 and cast_to(outs[0], TensorProto.UINT8) and outs[0].output[0] not in graph_outputs):
            for p in ins:
                drop.add(id(p))
                rename[p.output[0]] = p.input[0]
            drop.add(id(outs[0]))
            rename[outs[0].output[0]] = n.output[0]
    if not drop:
        return
    keep = [n for n in g.node if id(n) not in drop]
    for n in keep:
        n.input[:] = [rename.get(i, i) for i in n.input]
    del g.node[:]
    g.node.extend(keep)
    onnx.checker.check_model(m)
    onnx.save(m, path)


def _point_external(tensor, location, offset, length):
    """Make an initializer read its bytes from ``location`` (beside the model) at ``offset``, as ONNX external
    data."""
    from onnx import TensorProto
    tensor.ClearField('raw_data')
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    for k, v in (('location', location), ('offset', str(offset)), ('length', str(length))):
        e = tensor.external_data.add()
        e.key, e.value = k, v


def share_weights(paths, location, min_bytes=4096):
    """Store the large initializers that the ONNX files in ``paths`` (one folder) all hold, with the very same
    values, once: in ``location`` beside them, as ONNX external data that each file points into. ONNX Runtime and
    TensorRT's parser (parse_from_file, trtexec) read it from the file's folder. Files must stay together."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    folder = os.path.dirname(paths[0])
    models = [onnx.load(p) for p in paths]
    big = [t.name for t in models[0].graph.initializer if len(t.raw_data) >= min_bytes]
    ref = {t.name: numpy_helper.to_array(t) for t in models[0].graph.initializer if t.name in big}
    for m, p in zip(models[1:], paths[1:]):
        have = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer if t.name in ref}
        if set(have) != set(ref) or any(not np.array_equal(have[k], ref[k]) for k in ref):
            raise NanolinkError('{} does not hold the same weights as {}: cannot share them'.format(p, paths[0]))
    offsets, data = {}, bytearray()
    for t in models[0].graph.initializer:
        if t.name in ref:
            data += b'\0' * (-len(data) % 64)                     # aligned, as onnx writes external data
            offsets[t.name] = (len(data), len(t.raw_data))
            data += t.raw_data
    with open(os.path.join(folder, location), 'wb') as f:
        f.write(bytes(data))
    for m, p in zip(models, paths):
        for t in m.graph.initializer:
            if t.name in offsets:
                _point_external(t, location, *offsets[t.name])
        onnx.save(m, p)
    onnx.checker.check_model(paths[0])


def share_by_value(owner, others, location, min_bytes=4096):
    """Store ``owner``'s large initializers (an ONNX file; inline or already external) in ``location`` beside it,
    as external data, and point every initializer of the ``others`` (same folder) that holds the very same bytes
    there too; theirs that match nothing stay inline. -> the number of tensors each of ``others`` now shares.
    E.g. a quality decoder that runs the fast decoder's layers unchanged, plus a post-filter of its own.

    Nothing is written unless each of ``others`` shares at least one tensor; the files are written beside their
    targets and then renamed over them, weights first (its layout depends only on ``owner``'s tensors, so an
    interrupted run leaves every file readable)."""
    import onnx
    folder = os.path.dirname(owner)
    paths = [owner] + list(others)
    try:
        models = [onnx.load(p) for p in paths]                # loads any external data they already have
    except (OSError, ValueError) as e:
        raise NanolinkError('cannot read {} with its weights ({}): export the model again with nanolink-export, '
                            'then the decoder variant'.format(', '.join(paths), e))
    offsets, data = {}, bytearray()
    for t in models[0].graph.initializer:
        if len(t.raw_data) >= min_bytes and t.raw_data not in offsets:
            data += b'\0' * (-len(data) % 64)
            offsets[t.raw_data] = (len(data), len(t.raw_data))
            data += t.raw_data
    shared = []
    for m in models:
        n = 0
        for t in m.graph.initializer:
            if t.raw_data in offsets:
                _point_external(t, location, *offsets[t.raw_data])
                n += 1
        shared.append(n)
    for p, n in zip(others, shared[1:]):
        if not n:
            raise NanolinkError('{} holds none of the weights of {}: nothing to share; export the model again, '
                                'then the decoder variant'.format(p, owner))
    target = os.path.join(folder, location)
    with open(target + '.tmp', 'wb') as f:
        f.write(bytes(data))
    for m, p in zip(models, paths):
        onnx.save(m, p + '.tmp')
    os.replace(target + '.tmp', target)
    for p in paths:
        os.replace(p + '.tmp', p)
        onnx.checker.check_model(p)
    return shared[1:]
