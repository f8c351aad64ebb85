"""A compiled CPU kernel for FWM's acting step on the factor form (no autograd).

While collecting, A2C steps the FWM of 600 envs one step at a time without gradients. In factor
form (:class:`fwmrl.memory.fwm_scan.LowRankMemory`) such a step is a few thousand multiply-adds
per sequence, but in eager PyTorch it is some 60 tensor operations over ``[B, R, m]`` tensors, each
a pass over memory: the step costs far more than its arithmetic. :func:`lowrank_step` runs the
same step per sequence in one C loop whose working set (a sequence's ``R × m`` factors) stays in
the first-level cache.

The C source below is compiled on first use with the system C compiler (``$CC``, else ``cc``)
into a shared library cached under ``$FWMRL_KERNEL_CACHE`` (default ``~/.cache/fwmrl/kernels``),
keyed by a hash of the source and flags, and called through :mod:`ctypes` (no torch headers, so
the build takes about a second). Where no compiler is found or the build fails, :func:`available`
is False (with one warning) and :class:`fwmrl.memory.fwm.FWMCore` keeps the eager step.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

_SOURCE = r"""
#include <math.h>
#include <string.h>

#define PRAGMA(x) _Pragma(#x)
#define SIMD_SUM(acc) PRAGMA(omp simd reduction(+ : acc))

/* One FWM step on the factors of B sequences: the same equations as _lowrank_step in
   fwm_scan.py (write, renormalise, N_r hops on the updated memory), on the activated keys
   (k1, k2, v, [B, 3m]), write rates (λβ, [B]), first queries (n0, [B, m]) and hop keys
   ([B, N_r m]). All arrays are contiguous; k1o, k2o, uo get the R old factors followed by the
   new write. */
void NAME(long B, long R, REAL eps, const REAL *keys, const REAL *rates, const REAL *queries,
          const REAL *hop_keys, const REAL *k1, const REAL *k2, const REAL *u, const REAL *w,
          const REAL *nsq, REAL *n_out, REAL *k1o, REAL *k2o, REAL *uo, REAL *wo, REAL *nsqo) {
    const long m = M, hops = HOPS, S = R + 1;
    for (long b = 0; b < B; b++) {
        const REAL *key1 = keys + b * 3 * m, *key2 = key1 + m, *v = key1 + 2 * m;
        const REAL *e = hop_keys + b * hops * m, rate = rates[b];
        const REAL *K1 = k1 + b * R * m, *K2 = k2 + b * R * m, *U = u + b * R * m;
        const REAL *W = w + b * R;
        REAL *K1o = k1o + b * S * m, *K2o = k2o + b * S * m, *Uo = uo + b * S * m;
        REAL *Wo = wo + b * S;
        REAL n[M], vold[M], val[M], coef[S], q2[HOPS * S];
        memcpy(n, queries + b * m, sizeof(REAL) * m);
        memcpy(K1o, K1, sizeof(REAL) * R * m);
        memcpy(K2o, K2, sizeof(REAL) * R * m);
        memcpy(Uo, U, sizeof(REAL) * R * m);
        memcpy(K1o + R * m, key1, sizeof(REAL) * m);
        memcpy(K2o + R * m, key2, sizeof(REAL) * m);
        for (long j = 0; j < m; j++) vold[j] = 0;
        for (long r = 0; r < R; r++) {
            const REAL *a = K1 + r * m, *c = K2 + r * m, *ur = U + r * m;
            REAL d1 = 0, d2 = 0;
            SIMD_SUM(d1)
            for (long j = 0; j < m; j++) d1 += a[j] * key1[j];
            SIMD_SUM(d2)
            for (long j = 0; j < m; j++) d2 += c[j] * key2[j];
            REAL cr = d1 * d2 * W[r];
            for (long j = 0; j < m; j++) vold[j] += cr * ur[j];
        }
        REAL cross = 0, usq = 0, s1 = 0, s2 = 0;
        REAL *unew = Uo + R * m;
        for (long j = 0; j < m; j++) unew[j] = rate * (v[j] - vold[j]);
        SIMD_SUM(cross)
        for (long j = 0; j < m; j++) cross += vold[j] * unew[j];
        SIMD_SUM(usq)
        for (long j = 0; j < m; j++) usq += unew[j] * unew[j];
        SIMD_SUM(s1)
        for (long j = 0; j < m; j++) s1 += key1[j] * key1[j];
        SIMD_SUM(s2)
        for (long j = 0; j < m; j++) s2 += key2[j] * key2[j];
        REAL grown = nsq[b] + 2 * cross + s1 * s2 * usq;
        REAL scale = grown > 1 ? 1 / SQRT(grown) : 1;
        for (long r = 0; r < R; r++) Wo[r] = W[r] * scale;
        Wo[R] = scale;
        nsqo[b] = grown * scale * scale;
        for (long r = 0; r < S; r++) {
            const REAL *c = K2o + r * m;
            for (long i = 0; i < hops; i++) {
                REAL d = 0;
                SIMD_SUM(d)
                for (long j = 0; j < m; j++) d += c[j] * e[i * m + j];
                q2[i * S + r] = d * Wo[r];
            }
        }
        for (long i = 0; i < hops; i++) {
            for (long r = 0; r < S; r++) {
                const REAL *a = K1o + r * m;
                REAL d = 0;
                SIMD_SUM(d)
                for (long j = 0; j < m; j++) d += a[j] * n[j];
                coef[r] = d * q2[i * S + r];
            }
            for (long j = 0; j < m; j++) val[j] = 0;
            for (long r = 0; r < S; r++) {
                const REAL *ur = Uo + r * m;
                for (long j = 0; j < m; j++) val[j] += coef[r] * ur[j];
            }
            REAL mean = 0, var = 0;
            SIMD_SUM(mean)
            for (long j = 0; j < m; j++) mean += val[j];
            mean /= m;
            SIMD_SUM(var)
            for (long j = 0; j < m; j++) var += (val[j] - mean) * (val[j] - mean);
            var /= m;
            REAL inv = 1 / SQRT(var + eps);
            for (long j = 0; j < m; j++) n[j] = (val[j] - mean) * inv;
        }
        memcpy(n_out + b * m, n, sizeof(REAL) * m);
    }
}
"""
_VARIANTS = {
    torch.float32: ("fwm_lowrank_step_f32", "float", "sqrtf", ctypes.c_float),
    torch.float64: ("fwm_lowrank_step_f64", "double", "sqrt", ctypes.c_double),
}
_FLAGS = ["-O3", "-march=native", "-fopenmp-simd", "-fPIC", "-shared", "-std=gnu11"]
_libraries: dict[tuple[int, int], ctypes.CDLL | None] = {}
"""Built libraries by ``(m, N_r)`` (``None``: the build failed)."""


def _full_source(memory_size: int, read_hops: int) -> str:
    parts = [
        f"#include <math.h>\n#include <string.h>\n#define M {memory_size}\n#define HOPS {read_hops}"
    ]
    body = _SOURCE.replace("#include <math.h>\n#include <string.h>\n", "")
    for name, real, sqrt, _ in _VARIANTS.values():
        parts.append(
            f"#define NAME {name}\n#define REAL {real}\n#define SQRT {sqrt}\n{body}\n"
            "#undef NAME\n#undef REAL\n#undef SQRT\n"
        )
    return "\n".join(parts)


def _build(memory_size: int, read_hops: int) -> ctypes.CDLL:
    """Compile (once per source, sizes, flags and compiler) and load the library for ``m`` and
    ``N_r`` (compile-time constants, so the loops over ``m`` unroll and vectorise)."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise RuntimeError("no C compiler found (set CC)")
    source = _full_source(memory_size, read_hops)
    key = hashlib.sha256("\0".join([source, compiler, *_FLAGS]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("FWMRL_KERNEL_CACHE", Path.home() / ".cache" / "fwmrl" / "kernels"))
    target = cache / f"fwm_acting_m{memory_size}_h{read_hops}_{key}.so"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            src, out = Path(tmp) / "fwm_acting.c", Path(tmp) / "fwm_acting.so"
            src.write_text(source)
            done = subprocess.run(
                [compiler, *_FLAGS, str(src), "-o", str(out), "-lm"],
                capture_output=True,
                text=True,
            )
            if done.returncode:
                raise RuntimeError(f"{compiler} failed:\n{done.stderr[-2000:]}")
            os.replace(out, target)  # atomic: processes building at once agree
    library = ctypes.CDLL(str(target))
    pointer = ctypes.c_void_p
    for name, _, _, real in _VARIANTS.values():
        function = getattr(library, name)
        function.restype = None
        function.argtypes = [ctypes.c_long, ctypes.c_long, real, *([pointer] * 15)]
    return library


def _load(memory_size: int, read_hops: int) -> ctypes.CDLL | None:
    key = (memory_size, read_hops)
    if key not in _libraries:
        try:
            _libraries[key] = _build(memory_size, read_hops)
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:
            _libraries[key] = None
            warnings.warn(
                f"fwmrl: the compiled FWM acting step is unavailable, using the eager one ({error})",
                stacklevel=3,
            )
    return _libraries[key]


def available(like: Tensor, memory_size: int, read_hops: int) -> bool:
    """Whether :func:`lowrank_step` can run on tensors like ``like`` (CPU, float32/float64) for
    ``m = memory_size`` and ``N_r = read_hops``; the library builds on the first call."""
    return (
        like.device.type == "cpu"
        and like.dtype in _VARIANTS
        and _load(memory_size, read_hops) is not None
    )


def lowrank_step(
    keys: Tensor,
    rate: Tensor,
    query: Tensor,
    hop_keys: Tensor,
    memory: tuple[Tensor, Tensor, Tensor, Tensor, Tensor],
    layer_norm_eps: float,
) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor, Tensor, Tensor]]:
    """One acting step in the compiled kernel (no autograd; see :func:`available`).

    Parameters
    ----------
    keys:
        ``[B, 3m]``: the activated write keys and value ``k1, k2, v``.
    rate:
        ``[B]``: the write rates ``λβ``.
    query, hop_keys:
        ``[B, m]`` and ``[B, N_r m]``: the first query ``n⁽⁰⁾`` and the activated hop keys.
    memory:
        ``(k1, k2, u [B, R, m], weight [B, R], norm_sq [B])`` before the step, resets applied.
    layer_norm_eps:
        Epsilon of the hops' layer norm.

    Returns
    -------
    ``n [B, m]`` (the last hop's read) and the factors after the step (``R + 1`` writes).
    """
    k1 = memory[0]
    batch, writes, m = k1.shape
    read_hops = hop_keys.shape[1] // m
    library = _load(m, read_hops)
    if library is None:
        raise RuntimeError("the compiled FWM acting step is unavailable")
    name, _, _, real = _VARIANTS[keys.dtype]
    inputs = [t.contiguous() for t in (keys, rate, query, hop_keys, *memory)]
    n = keys.new_empty(batch, m)
    k1_out = keys.new_empty(batch, writes + 1, m)
    outputs = (
        k1_out,
        torch.empty_like(k1_out),
        torch.empty_like(k1_out),
        keys.new_empty(batch, writes + 1),
        keys.new_empty(batch),
    )
    getattr(library, name)(
        batch,
        writes,
        real(layer_norm_eps),
        *(t.data_ptr() for t in inputs),
        n.data_ptr(),
        *(t.data_ptr() for t in outputs),
    )
    return n, outputs
