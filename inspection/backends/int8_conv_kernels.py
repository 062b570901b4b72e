"""Which of ONNX Runtime's CPU int8 convolution kernels runs each convolution of a Q/DQ model.

ONNX Runtime picks the kernel of a fused QLinearConv from its weights' zero point: zero (symmetric
weights, what the quantizer writes and what TensorRT requires) selects a direct int8 convolution;
any other value selects im2col plus its int8 GEMM, which on CPUs with AMX or VNNI is much faster
for wide convolutions. Per layer of resnet18 at 224 px on the 2-core development machine (AMX-INT8):
the 3x3 convolutions over 128 or more channels (kernel_dim 1,152 to 4,608) took 30-45% less time on
the GEMM path at batch 1 and at batch 8, while the 7x7 stem (kernel_dim 147), the 1x1 shortcuts
(64-256) and the 3x3 convolutions over 64 channels (576) were faster on the direct kernel at batch 1.

The rewrite moves every weight down by one and its zero point to -1, so (w - 1) - (-1) = w: the
dequantized weights, and so the integers the kernels multiply, are exactly those of the symmetric
file. The bundle keeps the symmetric file (TensorRT builds its int8 engines from it); the ONNX
Runtime CPU backend rewrites it in memory when it loads it.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

# The smallest kernel_dim (input channels per group x kernel height x kernel width) routed to the GEMM.
MIN_GEMM_KERNEL_DIM = 1024
_OFFSET_ZERO_POINT = -1


def route_wide_convolutions_to_gemm(model: onnx.ModelProto, min_kernel_dim: int = MIN_GEMM_KERNEL_DIM) -> int:
    """Rewrite, in place, the int8 weights of convolutions with kernel_dim >= `min_kernel_dim` to the
    offset form; returns how many were rewritten. Only an int8 weight initializer with all-zero zero
    points that feeds one DequantizeLinear, whose output feeds only Conv nodes, is touched; a weight
    holding -128 (not written by a symmetric quantizer, and it would wrap) is left as it is."""
    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    uses: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            uses.setdefault(name, []).append(node)
    rewritten = 0
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or len(node.input) < 3:
            continue
        weight_name, zero_point_name = node.input[0], node.input[2]
        if weight_name not in initializers or zero_point_name not in initializers:
            continue
        if len(uses[weight_name]) != 1 or len(uses[zero_point_name]) != 1:
            continue  # shared with another node: rewriting it would change that node
        consumers = uses.get(node.output[0], [])
        if not consumers or any(consumer.op_type != "Conv" for consumer in consumers):
            continue
        weights = numpy_helper.to_array(initializers[weight_name])
        zero_points = numpy_helper.to_array(initializers[zero_point_name])
        if weights.dtype != np.int8 or zero_points.dtype != np.int8 or zero_points.any() or weights.ndim < 3:
            continue
        if int(np.prod(weights.shape[1:])) < min_kernel_dim or weights.min() == -128:
            continue
        initializers[weight_name].CopyFrom(numpy_helper.from_array((weights - np.int8(1)).astype(np.int8), weight_name))
        initializers[zero_point_name].CopyFrom(
            numpy_helper.from_array(np.full_like(zero_points, _OFFSET_ZERO_POINT), zero_point_name))
        rewritten += 1
    return rewritten
