"""The CUDA C source of the ``cupy`` backend's kernels (compiled and launched by
cupy_backend.py): each built-in shape's g(x; p), the forward and backward kernels over all T,
and a host driver for testing them without a GPU. One source per (surrogate, input dtype,
reset mode, detach_reset); everything else is a kernel argument."""
from __future__ import annotations

import torch

from .shapes import SHAPES, Shape

# g(x; p) of each built-in shape, as CUDA: the same formulas as shapes.py (x = H - theta).
SHAPE_SOURCE = {
    "rect": """
        float l = p[0], r = p[1];
        if (x >= -l && x < 0.f) return p[2] / l;
        if (x >= 0.f && x <= r) return p[3] / r;
        return 0.f;""",
    "triangle": """
        float w = x < 0.f ? p[0] : p[1];
        return p[2] * fmaxf(0.f, 1.f - fabsf(x) / w);""",
    "ramp": """
        if (x < -p[0] || x > p[1]) return 0.f;
        return fmaxf(0.f, p[2] * x + p[3]);""",
    "sigmoid": """
        float s = 1.f / (1.f + expf(-p[0] * x));
        return p[0] * s * (1.f - s);""",
    "atan": """
        float u = 1.57079632679f * p[0] * x;
        return p[0] / (2.f * (1.f + u * u));""",
    "superspike": """
        float d = 1.f + p[0] * fabsf(x);
        return 1.f / (d * d);""",
    "dspike": """
        if (fabsf(x) > 0.5f * p[1]) return 0.f;
        float t = tanhf(p[0] * x / p[1]);
        return p[0] * (1.f - t * t) / (2.f * p[1] * tanhf(0.5f * p[0]));""",
    "exponential": """
        return p[0] * expf(-p[1] * fabsf(x));""",
    # LocalZO's sample of neuron i (delta, samples m, the step's seed): the draws of the numba
    # kernels (cpu_draws.py, ``localzo_surrogate``), from the same counter-based generator
    "localzo": """
        unsigned m = (unsigned)p[1], full = m / 2u, key = mix32((unsigned)p[2]);
        float ax = fabsf(x), g = 0.f;
        for (unsigned q = 0; q < full; ++q) {
            float2 z = half_normal_pair(key, (unsigned)i * full + q);
            g += (ax < p[0] * z.x ? z.x : 0.f) + (ax < p[0] * z.y ? z.y : 0.f);
        }
        if (m & 1u) {  // neurons 2P and 2P + 1 share pair P: z1 for the even one, z2 the odd
            float2 z = half_normal_pair(mix32(key ^ 0x85EBCA6Bu), (unsigned)(i >> 1));
            float zi = (i & 1) ? z.y : z.x;
            g += ax < p[0] * zi ? zi : 0.f;
        }
        return g * (1.f / (p[1] * 2.f * p[0]));""",
}

# dF/dp of the primitive F (shapes.py) where the kernel sums the parameters' gradients itself
# (the numba kernels' PARAM_KINDS): the rectangle's left, right, area_left, area_right
PARAM_SOURCE = {
    "rect": """
        float l = p[0], r = p[1];
        bool on_left = x >= -l && x < 0.f, on_right = x >= 0.f && x <= r;
        out[0] = on_left ? -p[2] * x / (l * l) : 0.f;
        out[1] = on_right ? -p[3] * x / (r * r) : 0.f;
        out[2] = on_left ? (x + l) / l : (x >= 0.f ? 1.f : 0.f);
        out[3] = on_right ? x / r : (x > r ? 1.f : 0.f);""",
}
MAX_P = 4  # shape parameters a kernel sums (the rectangle's four)

# LocalZO's generator (cpu_draws.py and cpu_math.py give the reasons and sources): lowbias32,
# the logarithm as 2 atanh, Cephes' sinf / cosf on [-pi/4, pi/4], the Box-Muller pair of |z|
# of a key and counter
RANDOM_DRAWS = r"""
HD unsigned mix32(unsigned x) {
    x ^= x >> 16; x *= 0x7FEB352Du; x ^= x >> 15; x *= 0x846CA68Bu; return x ^ (x >> 16);
}
HD float fast_log(float x) {
    int bits = float_bits(x);
    float e = (float)((bits >> 23) - 126);
    float m = bits_float((bits & 0x007FFFFF) | 0x3F000000);
    bool small = m < 0.707106781186547524f;
    e = small ? e - 1.f : e;
    m = small ? m + m : m;
    float s = (m - 1.f) / (m + 1.f), w = s * s;
    float tail = 0.66666794f + w * (0.3997653f + w * 0.29884964f);
    return s * (2.f + w * tail) + -2.12194440e-4f * e + 0.693359375f * e;
}
HD float2 half_normal_pair(unsigned key, unsigned counter) {
    unsigned a = mix32(key ^ counter), b = mix32(a ^ 0x9E3779B9u);
    float u = ((float)(int)(a >> 8) + 0.5f) * 5.9604644775390625e-8f;
    float f = ((float)(int)(b >> 8) * 5.9604644775390625e-8f - 0.5f) * 2.f * 0.785398163397448f;
    float f2 = f * f;
    float sin_f = f + f * f2 * ((-1.9515295891e-4f * f2 + 8.3321608736e-3f) * f2
                                - 1.6666654611e-1f);
    float cos_f = 1.f - 0.5f * f2 + f2 * f2 * ((2.443315711809948e-5f * f2
                                                - 1.388731625493765e-3f) * f2
                                               + 4.166664568298827e-2f);
    float r = sqrtf(-2.f * fast_log(u)) * 0.707106781186547524f;
    return make_float2(r * (cos_f - sin_f), r * (cos_f + sin_f));
}
"""


PRECOMPUTED = "precomputed"  # the kernel variant that reads g from a tensor


def has_kernel(shape: Shape) -> bool:
    """Whether ``shape`` is the built-in shape of its name with a CUDA source: a plugin's own
    shape that reuses a built-in name runs through the precomputed surrogate, never on the
    other's kernel."""
    return shape.name in SHAPE_SOURCE and SHAPES.get(shape.name) is shape


DTYPES = {  # torch dtype -> (CUDA type, to float, from float)
    torch.float32: ("float", "", ""),
    torch.float16: ("__half", "__half2float", "__float2half"),
    torch.bfloat16: ("__nv_bfloat16", "__bfloat162float", "__float2bfloat16"),
}
HEADER = "#include <cuda_fp16.h>\n#include <cuda_bf16.h>\n"

KERNELS = r"""
namespace {ns} {{
typedef {in_t} in_t;
#define HD __host__ __device__ __forceinline__
HD float load(in_t v) {{ return {to_float}(v); }}
HD in_t store(float v) {{ return {from_float}(v); }}
HD int float_bits(float x) {{ union {{ float f; int i; }} u; u.f = x; return u.i; }}
HD float bits_float(int i) {{ union {{ int i; float f; }} u; u.i = i; return u.f; }}
{random_draws}
HD float sg(float x, const float* p, long long i) {{ {shape_code}
}}
#define PARAM_SUMS {param_sums}  // the kernel sums dL/dp itself (PARAM_SOURCE)
HD void dF_dp(float x, const float* p, float* out) {{ {param_code}
}}
#define PRE {pre}  // the surrogate comes precomputed in g_pre
HD float reset(float h, float s, float th, float v_reset) {{
    return {hard} ? (s > 0.f ? v_reset : h) : h - th * s;
}}

// One neuron over all T: charge, fire (exact), reset; H is saved for the backward pass.
HD void forward_neuron(long long i, const in_t* x, const float* v0, float v0_scalar,
                       const float* theta, float k, float c, float b, float v_reset, in_t* s,
                       float* h, float* v_out, int T, long long N) {{
    float v = v0 ? v0[i] : v0_scalar;
    for (int t = 0; t < T; ++t) {{
        long long j = t * N + i;
        float hv = k * v + c * load(x[j]) + b;
        float spike = hv >= theta[t] ? 1.f : 0.f;
        h[j] = hv;
        s[j] = store(spike);
        v = reset(hv, spike, theta[t], v_reset);
    }}
    v_out[i] = v;
}}

// One neuron, one step of BPTT: gv is dL/dV[t] in and dL/dV[t-1] out. Writes dL/dX[t] (and the
// total dL/dS[t] when asked); returns this neuron's share of dL/dtheta[t] and of dL/dk.
struct Share {{ float theta, k, p[{max_p}]; }};
HD Share backward_step(long long i, int t, float& gv, const float* h, const float* v0,
                       float v0_scalar, const float* theta, const float* p, int P,
                       const float* g_pre, const in_t* grad_s, const float* grad_h,
                       int has_grad_h, float k, float c, float v_reset, in_t* grad_x,
                       float* gs_out, int has_gs_out, int need_k, int need_p, long long N) {{
    long long j = t * N + i;
    float th = theta[t], hv = h[j], x = hv - th, g = PRE ? g_pre[j] : sg(x, p + t * P, i);
    float gs = load(grad_s[j]);
    if (!{detach}) gs += {hard} ? gv * (v_reset - hv) : -gv * th;  // through the reset
    float d = ({hard} ? (x < 0.f ? gv : 0.f) : gv) + gs * g;      // dV/dH, then dS/dH
    if (has_grad_h) d += grad_h[j];
    if (grad_x) grad_x[j] = store(c * d);
    if (has_gs_out) gs_out[j] = gs;
    Share share = {{-gs * g - ((!{hard} && x >= 0.f) ? gv : 0.f), 0.f, {{0.f}}}};
    if (PARAM_SUMS && need_p) {{
        dF_dp(x, p + t * P, share.p);
        for (int q = 0; q < P; ++q) share.p[q] *= gs;
    }}
    if (need_k) {{
        float v_prev = v0 ? v0[i] : v0_scalar;
        if (t > 0) {{
            float hp = h[j - N], sp = hp >= theta[t - 1] ? 1.f : 0.f;
            v_prev = reset(hp, sp, theta[t - 1], v_reset);
        }}
        share.k = d * v_prev;
    }}
    gv = d * k;
    return share;
}}

__device__ __forceinline__ float warp_sum(float v) {{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffff, v, o);
    return v;
}}
}}

// A null pointer means "not given" (v0: the scalar; grad_x, grad_v0: not needed).
extern "C" __global__ void forward_{tag}(
        const {ns}::in_t* x, const float* v0, float v0_scalar, const float* theta,
        const float* k, float c, float b, float v_reset, {ns}::in_t* s, float* h, float* v_out,
        int T, long long N) {{
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i < N) {ns}::forward_neuron(i, x, v0, v0_scalar, theta, k[0], c, b, v_reset, s, h, v_out,
                                    T, N);
}}

extern "C" __global__ void backward_{tag}(
        const float* h, const float* v0, float v0_scalar, const float* theta, const float* p,
        int P, const float* g_pre, const {ns}::in_t* grad_s, const float* grad_v,
        int has_grad_v, const float* grad_h, int has_grad_h, const float* k, float c,
        float v_reset, {ns}::in_t* grad_x, float* grad_v0, float* gs_out, int has_gs_out,
        float* acc_theta, float* acc_k, float* acc_p, int need_theta, int need_k, int need_p,
        int T, long long N) {{
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    bool live = i < N;  // every lane stays for the warp sums
    float gv = (live && has_grad_v) ? grad_v[i] : 0.f;
    for (int t = T - 1; t >= 0; --t) {{
        {ns}::Share share = {{0.f, 0.f, {{0.f}}}};
        if (live)
            share = {ns}::backward_step(i, t, gv, h, v0, v0_scalar, theta, p, P, g_pre,
                                         grad_s, grad_h, has_grad_h, k[0], c, v_reset, grad_x,
                                         gs_out, has_gs_out, need_k, need_p, N);
        if (PARAM_SUMS && need_p) {{
            for (int q = 0; q < P; ++q) {{
                float sum = {ns}::warp_sum(share.p[q]);
                if ((threadIdx.x & 31) == 0) atomicAdd(acc_p + t * P + q, sum);
            }}
        }}
        if (need_theta) {{
            float sum = {ns}::warp_sum(share.theta);
            if ((threadIdx.x & 31) == 0) atomicAdd(acc_theta + t, sum);
        }}
        if (need_k) {{
            float sum = {ns}::warp_sum(share.k);
            if ((threadIdx.x & 31) == 0) atomicAdd(acc_k, sum);
        }}
    }}
    if (live && grad_v0) grad_v0[i] = gv;
}}
"""

# The same per-neuron code driven by host loops: lets the CPU tests run the kernels' arithmetic
# (compiled by nvcc as host code) against the torch backend without a GPU.
HOST_DRIVER = r"""
extern "C" void host_forward_{tag}(
        const {ns}::in_t* x, const float* v0, float v0_scalar, const float* theta, float k,
        float c, float b, float v_reset, {ns}::in_t* s, float* h, float* v_out, int T,
        long long N) {{
    for (long long i = 0; i < N; ++i)
        {ns}::forward_neuron(i, x, v0, v0_scalar, theta, k, c, b, v_reset, s, h, v_out, T, N);
}}

extern "C" void host_backward_{tag}(
        const float* h, const float* v0, float v0_scalar, const float* theta, const float* p,
        int P, const float* g_pre, const {ns}::in_t* grad_s, const float* grad_v,
        const float* grad_h, float k, float c, float v_reset, {ns}::in_t* grad_x,
        float* grad_v0, float* gs_out, float* acc_theta, float* acc_k, float* acc_p, int T,
        long long N) {{
    for (long long i = 0; i < N; ++i) {{
        float gv = grad_v[i];
        for (int t = T - 1; t >= 0; --t) {{
            {ns}::Share share = {ns}::backward_step(i, t, gv, h, v0, v0_scalar, theta, p, P,
                                                     g_pre, grad_s, grad_h, 1, k, c, v_reset,
                                                     grad_x, gs_out, 1, 1, 1, N);
            acc_theta[t] += share.theta;
            acc_k[0] += share.k;
            for (int q = 0; PARAM_SUMS && q < P; ++q) acc_p[t * P + q] += share.p[q];
        }}
        if (grad_v0) grad_v0[i] = gv;
    }}
}}
"""


def variant_tag(shape: str, dtype: torch.dtype, hard: bool, detach: bool) -> str:
    return f"{shape}_{str(dtype).split('.')[-1]}_{'hard' if hard else 'soft'}_{int(detach)}"


def kernel_source(shape: str, dtype: torch.dtype, hard: bool, detach: bool,
                  header: bool = True, host_driver: bool = False) -> str:
    """The CUDA source of one variant (``shape``: a built-in shape's name or PRECOMPUTED); its
    kernels are ``forward_<tag>`` and ``backward_<tag>`` (and ``host_forward_<tag>`` /
    ``host_backward_<tag>`` with ``host_driver``)."""
    if shape not in SHAPE_SOURCE and shape != PRECOMPUTED:
        raise KeyError(f"no CUDA source for shape '{shape}'")
    in_t, to_float, from_float = DTYPES[dtype]
    tag = variant_tag(shape, dtype, hard, detach)
    pre = shape == PRECOMPUTED
    fields = dict(ns=f"v_{tag}", tag=tag, in_t=in_t, to_float=to_float, from_float=from_float,
                  shape_code="return 0.f;" if pre else SHAPE_SOURCE[shape],
                  random_draws=RANDOM_DRAWS, max_p=MAX_P,
                  param_sums="true" if shape in PARAM_SOURCE else "false",
                  param_code=PARAM_SOURCE.get(shape, ""),
                  pre="true" if pre else "false", hard="true" if hard else "false",
                  detach="true" if detach else "false")
    body = KERNELS.format(**fields) + (HOST_DRIVER.format(**fields) if host_driver else "")
    return (HEADER if header else "") + body
