"""A compiled CPU kernel for FWM's acting step on the factor form (no autograd).

While collecting, A2C steps the FWM of 600 envs one step at a time without gradients. In factor
form (:class:`fwmrl.memory.fwm_scan.LowRankMemory`) such a step is a few thousand multiply-adds
per sequence, but in eager PyTorch it is some 60 tensor operations over ``[B, R, m]`` tensors, each
a pass over memory: the step costs far more than its arithmetic. :func:`lowrank_step` runs the
same step per sequence in one C loop whose working set (a sequence's ``R × m`` factors) stays in
the first-level cache. :func:`lstm_cell` and :func:`acting_memory` go one step further for
:class:`fwmrl.memory.fwm.FWMCore`'s whole acting step: around four batched matrix products, the
controller's gates to its state, and the activations, reset and FWM step, each in one C loop.

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
from typing import Any

import torch
from torch import Tensor

_SOURCE = r"""
#include <math.h>
#include <string.h>

#define PRAGMA(x) _Pragma(#x)
#define INLINE inline __attribute__((always_inline))
#define SIMD_SUM(acc) PRAGMA(omp simd reduction(+ : acc))


/* A hop's read val [m] to its layer norm (no gain or bias, epsilon eps) in n [m]. */
static INLINE void fwm_hop_norm(REAL eps, const REAL *val, REAL *n) {
    const long m = M;
    REAL mean = 0, var = 0;
    SIMD_SUM(mean)
    for (long j = 0; j < m; j++) mean += val[j];
    mean /= m;
    SIMD_SUM(var)
    for (long j = 0; j < m; j++) var += (val[j] - mean) * (val[j] - mean);
    var /= m;
    const REAL inv = 1 / SQRT(var + eps);
    for (long j = 0; j < m; j++) n[j] = (val[j] - mean) * inv;
}

/* The activations of the acting step's projections wr (write_proj's ŝ, r̂, v̂, b̂) and rd
   (read_proj's n̂₀, ê): tanh keys and value in keys [3m], the write rate λσ(b̂ + 1) returned, the
   first query in n [m] (tanh with flags & 1) and the hop keys (tanh with flags & 2: act + m,
   else rd + m) in *e; act [(N_r + 1) m] holds the tanh of rd. */
static INLINE REAL fwm_activate(long hops, long flags, REAL write_scale, const REAL *wr,
                                const REAL *rd, REAL *keys, REAL *act, REAL *n, const REAL **e) {
    const long m = M, NR = (hops + 1) * m;
    for (long j = 0; j < 3 * m; j++) keys[j] = TANH(wr[j]);
    for (long j = 0; j < NR; j++) act[j] = TANH(rd[j]);
    for (long j = 0; j < m; j++) n[j] = (flags & 1) ? act[j] : rd[j];
    *e = (flags & 2) ? act + m : rd + m;
    return write_scale * SIGMOID(wr[3 * m] + 1);
}

/* One FWM step on the factors of one sequence: the same equations as _lowrank_step in
   fwm_scan.py (write, renormalise, N_r hops on the updated memory) on its activated keys and value
   (key1, key2, v [m] each), write rate (λβ), first query (n, [m], replaced by the last hop's read)
   and hop keys (e, [N_r m]); K1, K2, U [R, m] and W [R] are its factors and weights, nsq ‖F‖².
   K1o, K2o, Uo get the R old factors followed by the new write (the old ones are not copied
   where K1o is K1: the write is appended in place), Wo the R + 1 new weights. */
static void fwm_seq_step(long R, long hops, REAL eps, const REAL *key1, const REAL *key2,
                         const REAL *v, REAL rate, REAL *n, const REAL *e, const REAL *K1,
                         const REAL *K2, const REAL *U, const REAL *W, REAL nsq, REAL *K1o,
                         REAL *K2o, REAL *Uo, REAL *Wo, REAL *nsqo) {
    const long m = M, S = R + 1;
    REAL vold[M], val[M], coef[S], q2[hops * S];
    if (K1o != K1) {
        memcpy(K1o, K1, sizeof(REAL) * R * m);
        memcpy(K2o, K2, sizeof(REAL) * R * m);
        memcpy(Uo, U, sizeof(REAL) * R * m);
    }
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
    REAL grown = nsq + 2 * cross + s1 * s2 * usq;
    REAL scale = grown > 1 ? 1 / SQRT(grown) : 1;
    for (long r = 0; r < R; r++) Wo[r] = W[r] * scale;
    Wo[R] = scale;
    *nsqo = grown * scale * scale;
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
        fwm_hop_norm(eps, val, n);
    }
}

/* fwm_seq_step for B sequences on the activated keys and value (k1, k2, v, [B, 3m]), write rates
   (λβ, [B]), first queries (n0, [B, m]) and hop keys ([B, N_r m]). All arrays are contiguous. */
void fwm_lowrank_step(long B, long R, long hops, REAL eps, const REAL *keys, const REAL *rates, const REAL *queries,
          const REAL *hop_keys, const REAL *k1, const REAL *k2, const REAL *u, const REAL *w,
          const REAL *nsq, REAL *n_out, REAL *k1o, REAL *k2o, REAL *uo, REAL *wo, REAL *nsqo) {
    const long m = M, S = R + 1;
    for (long b = 0; b < B; b++) {
        const REAL *key1 = keys + b * 3 * m;
        REAL n[M];
        memcpy(n, queries + b * m, sizeof(REAL) * m);
        fwm_seq_step(R, hops, eps, key1, key1 + m, key1 + 2 * m, rates[b], n,
                     hop_keys + b * hops * m, k1 + b * R * m, k2 + b * R * m, u + b * R * m,
                     w + b * R, nsq[b], k1o + b * S * m, k2o + b * S * m, uo + b * S * m,
                     wo + b * S, nsqo + b);
        memcpy(n_out + b * m, n, sizeof(REAL) * m);
    }
}

/* The LSTM cell's gates to its new state, for B sequences: gates [B, 4D] (i, f, g, o) are the
   pre-activations with both biases, c [B, D] the cell state before the step and keep [B] (NULL:
   none) 0 where the sequence resets (its c is zeroed); h_out, c_out [B, D] get the new state and,
   when base is not NULL, base [B, D] = h_out + bias (the residual output before the memory's). */
void fwm_lstm_cell(long B, long D, const REAL *gates, const REAL *c, const REAL *keep,
                   const REAL *bias, REAL *h_out, REAL *c_out, REAL *base) {
    const long G = 4 * D;
    REAL act[G];
    for (long b = 0; b < B; b++) {
        const REAL kp = keep ? keep[b] : 1, *g = gates + b * G;
        for (long j = 0; j < 2 * D; j++) act[j] = SIGMOID(g[j]);
        for (long j = 2 * D; j < 3 * D; j++) act[j] = TANH(g[j]);
        for (long j = 3 * D; j < G; j++) act[j] = SIGMOID(g[j]);
        REAL *hb = h_out + b * D, *cb = c_out + b * D;
        for (long j = 0; j < D; j++) {
            const REAL cn = act[D + j] * (c[b * D + j] * kp) + act[j] * act[2 * D + j];
            cb[j] = cn;
            hb[j] = act[3 * D + j] * TANH(cn);
        }
        if (base)
            for (long j = 0; j < D; j++) base[b * D + j] = hb[j] + bias[j];
    }
}

/* The backward of fwm_lstm_cell (without keep or base): from the gates' pre-activations
   [B, 4D], the cell state before (c_prev) and after (c) the step and the adjoints of the new h
   and c ([B, D]; dc may be NULL: zero), the adjoints of the gates (dgates [B, 4D]) and of c_prev
   (dc_prev [B, D]). The activations are recomputed from the gates. */
void fwm_lstm_cell_backward(long B, long D, const REAL *gates, const REAL *c_prev, const REAL *c,
                            const REAL *dh, const REAL *dc, REAL *dgates, REAL *dc_prev) {
    const long G = 4 * D;
    REAL act[G], tc[D];
    for (long b = 0; b < B; b++) {
        const REAL *g = gates + b * G, *cb = c + b * D, *cp = c_prev + b * D, *dhb = dh + b * D;
        REAL *dg = dgates + b * G, *dcp = dc_prev + b * D;
        for (long j = 0; j < 2 * D; j++) act[j] = SIGMOID(g[j]);
        for (long j = 2 * D; j < 3 * D; j++) act[j] = TANH(g[j]);
        for (long j = 3 * D; j < G; j++) act[j] = SIGMOID(g[j]);
        for (long j = 0; j < D; j++) tc[j] = TANH(cb[j]);
        for (long j = 0; j < D; j++) {
            const REAL i = act[j], f = act[D + j], gg = act[2 * D + j], o = act[3 * D + j];
            const REAL total = (dc ? dc[b * D + j] : 0) + dhb[j] * o * (1 - tc[j] * tc[j]);
            dg[j] = total * gg * i * (1 - i);
            dg[D + j] = total * cp[j] * f * (1 - f);
            dg[2 * D + j] = total * i * (1 - gg * gg);
            dg[3 * D + j] = dhb[j] * tc[j] * o * (1 - o);
            dcp[j] = total * f;
        }
    }
}

/* The memory part of FWMCore's acting step on the factors of B sequences: from the write and
   read projections proj [B, 3m + 1 + (N_r + 1) m] (write_proj's ŝ, r̂, v̂, b̂ then read_proj's
   n̂₀, ê), the activations (tanh keys and value, rate λσ(b̂ + 1), tanh on the first query with
   flags & 1, on the hop keys with flags & 2), the reset of the weights and norm (keep [B], NULL:
   none) and fwm_seq_step; n_out [B, m] gets the last hop's read. Sequence b's factors start at
   k1 + b * in_stride (and k2, u) and its new ones at k1o + b * out_stride: the same memory
   appends the write in place. */
void fwm_acting_memory(long B, long R, long hops, long flags, REAL eps, REAL write_scale,
                       long in_stride, long out_stride, const REAL *proj, const REAL *keep,
                       const REAL *k1, const REAL *k2, const REAL *u, const REAL *w,
                       const REAL *nsq, REAL *n_out, REAL *k1o, REAL *k2o, REAL *uo, REAL *wo,
                       REAL *nsqo) {
    const long m = M, S = R + 1, NW = 3 * m + 1, NR = (hops + 1) * m, P = NW + NR;
    REAL keys[3 * M], act[NR], n[M], wk[S];
    for (long b = 0; b < B; b++) {
        const REAL kp = keep ? keep[b] : 1, *wr = proj + b * P, *e;
        const REAL rate = fwm_activate(hops, flags, write_scale, wr, wr + NW, keys, act, n, &e);
        for (long r = 0; r < R; r++) wk[r] = w[b * R + r] * kp;
        const long i = b * in_stride, o = b * out_stride;
        fwm_seq_step(R, hops, eps, keys, keys + m, keys + 2 * m, rate, n, e, k1 + i, k2 + i,
                     u + i, wk, nsq[b] * kp, k1o + o, k2o + o, uo + o, wo + b * S, nsqo + b);
        memcpy(n_out + b * m, n, sizeof(REAL) * m);
    }
}

/* FWMCore's acting step on a dense F ([B, m, m, m], contiguous) per sequence: the activations of
   proj as in fwm_acting_memory, the reset (keep [B], NULL: none; 0 zeroes the sequence's F), the
   delta-rule write F += k1 (x) k2 (x) λβ(v - v_old), the norm bound F /= max(1, |F|) and the N_r
   hops n = LN(sum_ij n_i e_j F_ij.); n_out [B, m] gets the last hop's read, Fo [B, m, m, m] the
   new F (the same equations as single_step_scan in fwm_scan.py). */
void fwm_acting_dense(long B, long hops, long flags, REAL eps, REAL write_scale, const REAL *proj,
                      const REAL *keep, const REAL *F, REAL *n_out, REAL *Fo) {
    const long m = M, NW = 3 * m + 1, NR = (hops + 1) * m, P = NW + NR, size = M * M * M;
    REAL keys[3 * M], act[NR], n[M], vold[M], u[M], t[M * M], val[M];
    for (long b = 0; b < B; b++) {
        const REAL kp = keep ? keep[b] : 1, *wr = proj + b * P, *e;
        const REAL *Fb = F + b * size;
        REAL *G = Fo + b * size;
        const REAL rate = fwm_activate(hops, flags, write_scale, wr, wr + NW, keys, act, n, &e);
        const REAL *k1 = keys, *k2 = keys + m, *v = keys + 2 * m;
        for (long p = 0; p < m; p++) vold[p] = 0;
        for (long i = 0; i < m; i++) {
            for (long j = 0; j < m; j++) {
                const REAL c = k1[i] * k2[j] * kp, *row = Fb + (i * m + j) * m;
                for (long p = 0; p < m; p++) vold[p] += c * row[p];
            }
        }
        for (long p = 0; p < m; p++) u[p] = rate * (v[p] - vold[p]);
        REAL nsq = 0;
        for (long i = 0; i < m; i++) {
            for (long j = 0; j < m; j++) {
                const REAL c = k1[i] * k2[j], *row = Fb + (i * m + j) * m;
                REAL *out = G + (i * m + j) * m, part = 0;
                for (long p = 0; p < m; p++) out[p] = kp * row[p] + c * u[p];
                SIMD_SUM(part)
                for (long p = 0; p < m; p++) part += out[p] * out[p];
                nsq += part;
            }
        }
        if (nsq > 1) {
            const REAL norm = SQRT(nsq);
            for (long k = 0; k < size; k++) G[k] /= norm;
        }
        for (long h = 0; h < hops; h++) {
            for (long k = 0; k < m * m; k++) t[k] = 0;
            for (long i = 0; i < m; i++) {
                const REAL ni = n[i], *slab = G + i * m * m;
                for (long k = 0; k < m * m; k++) t[k] += ni * slab[k];
            }
            for (long p = 0; p < m; p++) val[p] = 0;
            for (long j = 0; j < m; j++) {
                const REAL ej = e[h * m + j], *row = t + j * m;
                for (long p = 0; p < m; p++) val[p] += ej * row[p];
            }
            fwm_hop_norm(eps, val, n);
        }
        memcpy(n_out + b * m, n, sizeof(REAL) * m);
    }
}

/* The forward of _ScaledDeltaRecurrence in fwm_scan.py per sequence: the scaled delta-rule values
   su, the scaled old values sv ([B, C, m]) and the running norm bound S ([B, C + 1]). keep may be
   NULL (no resets). */
void fwm_delta_forward(long B, long C, const REAL *A, const REAL *W, const REAL *D,
                       const REAL *rate, const REAL *v, const REAL *keep, const REAL *nsq,
                       REAL *su, REAL *sv, REAL *S) {
    const long m = M;
    for (long b = 0; b < B; b++) {
        const REAL *Ab = A + b * C * m, *Wb = W + b * C * C, *vb = v + b * C * m;
        REAL *sub = su + b * C * m, *svb = sv + b * C * m, *Sb = S + b * (C + 1);
        REAL s = 1, nu = nsq[b];
        Sb[0] = 1;
        for (long t = 0; t < C; t++) {
            if (keep) nu *= keep[b * C + t];
            REAL vt[M], ut[M];
            for (long j = 0; j < m; j++) vt[j] = Ab[t * m + j];
            for (long r = 0; r < t; r++) {
                const REAL w = Wb[t * C + r], *ur = sub + r * m;
                for (long j = 0; j < m; j++) vt[j] += w * ur[j];
            }
            const REAL rt = rate[b * C + t], half_d = (REAL)0.5 * D[b * C + t];
            REAL acc = 0;
            for (long j = 0; j < m; j++) ut[j] = rt * vb[t * m + j] * s - rt * vt[j];
            SIMD_SUM(acc)
            for (long j = 0; j < m; j++) acc += (vt[j] + half_d * ut[j]) * ut[j];
            nu = nu + 2 * acc;
            REAL root = SQRT(nu);
            s = root > s ? root : s; /* a (rounded) negative nu leaves s as it is */
            memcpy(sub + t * m, ut, sizeof(REAL) * m);
            memcpy(svb + t * m, vt, sizeof(REAL) * m);
            Sb[t + 1] = s;
        }
    }
}

/* The reverse loop of _ScaledDeltaRecurrence.backward per sequence: the adjoints of the scaled
   old values (bar_v), of the scaled values (bar_u), of the norms (bar_norm) and of the initial
   norm (carry). The inputs are the per-step quantities the Python backward prepares. */
void fwm_delta_backward(long B, long C, const REAL *direct_u, const REAL *direct_s,
                        const REAL *to_norm, const REAL *passes, const REAL *norm_weight,
                        const REAL *su, const REAL *rate, const REAL *rv, const REAL *W,
                        const REAL *keep, const REAL *bar_s0, REAL *bar_v, REAL *bar_u,
                        REAL *bar_norm, REAL *carry_out) {
    const long m = M;
    for (long b = 0; b < B; b++) {
        const long o = b * C, om = b * C * m;
        const REAL *Wb = W + b * C * C;
        REAL *bvb = bar_v + om;
        REAL bs = bar_s0[b], carry = 0;
        for (long t = C - 1; t >= 0; t--) {
            const REAL nb = carry + to_norm[o + t] * bs, rt = rate[o + t];
            REAL ub[M];
            for (long j = 0; j < m; j++) ub[j] = direct_u[om + t * m + j];
            for (long r = t + 1; r < C; r++) {
                const REAL w = Wb[r * C + t], *vr = bvb + r * m;
                for (long j = 0; j < m; j++) ub[j] += w * vr[j];
            }
            for (long j = 0; j < m; j++) ub[j] += nb * norm_weight[om + t * m + j];
            REAL dot = 0;
            for (long j = 0; j < m; j++) bvb[t * m + j] = nb * 2 * su[om + t * m + j] - rt * ub[j];
            SIMD_SUM(dot)
            for (long j = 0; j < m; j++) dot += ub[j] * rv[om + t * m + j];
            memcpy(bar_u + om + t * m, ub, sizeof(REAL) * m);
            bar_norm[o + t] = nb;
            bs = direct_s[o + t] + dot + passes[o + t] * bs;
            carry = keep ? nb * keep[o + t] : nb;
        }
        carry_out[b] = carry;
    }
}

/* tanh for the gated fast-weight functions: TANH's exp form loses float's relative precision
   near zero (an absolute error of about 1e-7), which their layer norms amplify; there float uses
   Cephes' tanhf polynomial (|x| < 0.625). Both are computed, so loops over it still vectorise. */
static inline REAL gfw_tanh(REAL x) {
    const REAL z = x * x, wide = TANH(x);
    const REAL p = ((((REAL)-5.70498872745e-3 * z + (REAL)2.06390887954e-2) * z -
                     (REAL)5.37397155531e-2) * z + (REAL)1.33314422036e-1) * z -
                   (REAL)3.33332819422e-1;
    const REAL narrow = x + x * z * p;
    return sizeof(REAL) == 4 && z < (REAL)0.390625 ? narrow : wide;
}

/* GatedFWCore's fast net and fast-weight updates for one step of one sequence (see
   gated_fw.py): from the fast weights F1 [f, n], F2 [f, f] (n = f + I), the fast hidden state
   fast_h [f], the input x [I] and the slow net's update pre-activations d (alpha1 [f], beta1 [n],
   gamma1 [f], delta1 [n], alpha2, beta2, gamma2, delta2 [f] each); with reset, F1, F2 and fast_h
   are read as zeros (the sequence starts an episode). F1o, F2o get the updated weights
   F + A B^T - (s r^T) * F (s = sigmoid(gamma), r = sigmoid(delta), A = s tanh(alpha),
   B = r tanh(beta)), fh [f] the new fast hidden state LN(tanh(F2 LN(tanh(F1 [fast_h; x]))))
   (layer norms without gain or bias, epsilon eps; both products with the weights before the
   update) and sv [3f + 2] what the backward needs (tanh of both layers, the hidden layer and
   both reciprocal standard deviations). */
static void gfw_row_step(long f, long I, REAL eps, int reset, const REAL *F1, const REAL *F2,
                         const REAL *fast_h, const REAL *x, const REAL *d, REAL *F1o,
                         REAL *F2o, REAL *fh, REAL *sv) {
    const long n = f + I, o2 = 2 * (f + n);
    REAL fin[n], s1[f], r1[n], A1[f], B1[n], s2[f], r2[f], A2[f], B2[f];
    for (long i = 0; i < f; i++) {
        s1[i] = SIGMOID(d[f + n + i]);
        A1[i] = s1[i] * gfw_tanh(d[i]);
        s2[i] = SIGMOID(d[o2 + 2 * f + i]);
        A2[i] = s2[i] * gfw_tanh(d[o2 + i]);
        r2[i] = SIGMOID(d[o2 + 3 * f + i]);
        B2[i] = r2[i] * gfw_tanh(d[o2 + f + i]);
    }
    for (long j = 0; j < n; j++) {
        r1[j] = SIGMOID(d[2 * f + n + j]);
        B1[j] = r1[j] * gfw_tanh(d[f + j]);
    }
    for (long j = 0; j < f; j++) fin[j] = reset ? 0 : fast_h[j];
    for (long j = 0; j < I; j++) fin[f + j] = x[j];
    REAL *t1 = sv, *hid = sv + f, *t2 = sv + 2 * f;
    /* layer 1: its product with the old weights and their update in one pass */
    for (long i = 0; i < f; i++) {
        REAL acc = 0;
        const REAL *Fr = F1 + i * n;
        REAL *Or = F1o + i * n;
        if (reset) {
            for (long j = 0; j < n; j++) Or[j] = A1[i] * B1[j];
        } else {
            SIMD_SUM(acc)
            for (long j = 0; j < n; j++) acc += Fr[j] * fin[j];
            for (long j = 0; j < n; j++) Or[j] = (Fr[j] + A1[i] * B1[j]) - s1[i] * r1[j] * Fr[j];
        }
        t1[i] = gfw_tanh(acc);
    }
    REAL mean = 0, var = 0;
    for (long i = 0; i < f; i++) mean += t1[i];
    mean /= f;
    for (long i = 0; i < f; i++) var += (t1[i] - mean) * (t1[i] - mean);
    const REAL rstd1 = 1 / SQRT(var / f + eps);
    for (long i = 0; i < f; i++) hid[i] = (t1[i] - mean) * rstd1;
    /* layer 2 */
    for (long i = 0; i < f; i++) {
        REAL acc = 0;
        const REAL *Fr = F2 + i * f;
        REAL *Or = F2o + i * f;
        if (reset) {
            for (long j = 0; j < f; j++) Or[j] = A2[i] * B2[j];
        } else {
            SIMD_SUM(acc)
            for (long j = 0; j < f; j++) acc += Fr[j] * hid[j];
            for (long j = 0; j < f; j++) Or[j] = (Fr[j] + A2[i] * B2[j]) - s2[i] * r2[j] * Fr[j];
        }
        t2[i] = gfw_tanh(acc);
    }
    mean = 0, var = 0;
    for (long i = 0; i < f; i++) mean += t2[i];
    mean /= f;
    for (long i = 0; i < f; i++) var += (t2[i] - mean) * (t2[i] - mean);
    const REAL rstd2 = 1 / SQRT(var / f + eps);
    for (long i = 0; i < f; i++) fh[i] = (t2[i] - mean) * rstd2;
    sv[3 * f] = rstd1;
    sv[3 * f + 1] = rstd2;
}

/* gfw_row_step for B sequences: row b of delta at delta + b * dstride, keep [B] (NULL: none) 0
   where the sequence resets, save [B, 3f + 2]. */
void gfw_step(long B, long f, long I, long dstride, REAL eps, const REAL *F1, const REAL *F2,
              const REAL *fast_h, const REAL *x, const REAL *delta, const REAL *keep, REAL *F1o,
              REAL *F2o, REAL *fh_out, REAL *save) {
    const long n = f + I, S = 3 * f + 2;
    for (long b = 0; b < B; b++)
        gfw_row_step(f, I, eps, keep && keep[b] == 0, F1 + b * f * n, F2 + b * f * f,
                     fast_h + b * f, x + b * I, delta + b * dstride, F1o + b * f * n,
                     F2o + b * f * f, fh_out + b * f, save + b * S);
}

/* gfw_row_step over a window of T steps, sequence by sequence, updating the weights in place
   (they stay in the cache): x [T, B, I], delta [T, B, D] (D = 2(f + n) + 4f), keep [T, B] (NULL:
   none); F1o, F2o get the weights after the last step, fhs [T, B, f] and save [T, B, 3f + 2]
   every step's fast hidden state and saved values. */
void gfw_window(long T, long B, long f, long I, REAL eps, const REAL *F1, const REAL *F2,
                const REAL *fast_h, const REAL *x, const REAL *delta, const REAL *keep, REAL *F1o,
                REAL *F2o, REAL *fhs, REAL *save) {
    const long n = f + I, S = 3 * f + 2, D = 2 * (f + n) + 4 * f, P = f * n, Q = f * f;
    for (long b = 0; b < B; b++) {
        REAL *f1 = F1o + b * P, *f2 = F2o + b * Q;
        memcpy(f1, F1 + b * P, sizeof(REAL) * P);
        memcpy(f2, F2 + b * Q, sizeof(REAL) * Q);
        const REAL *h = fast_h + b * f;
        for (long t = 0; t < T; t++) {
            const long tb = t * B + b;
            gfw_row_step(f, I, eps, keep && keep[tb] == 0, f1, f2, h, x + tb * I, delta + tb * D,
                         f1, f2, fhs + tb * f, save + tb * S);
            h = fhs + tb * f;
        }
    }
}

/* The backward of one layer's update and product for one sequence: from the weights read (Fr,
   NULL: zeros), the layer's input v [q], its pre-activation adjoint du [p] and the new weights'
   adjoint G [p, q] (NULL: zero), the old weights' adjoint gF (zeros where reset; it may be G),
   v's adjoint gv, and the adjoints of s, r, A, B (gs, gA [p], gr, gB [q]). */
static void gfw_layer_backward(long p, long q, int reset, const REAL *F, const REAL *v,
                               const REAL *du, const REAL *G, const REAL *s, const REAL *r,
                               const REAL *A, const REAL *Bv, REAL *gF, REAL *gv, REAL *gs,
                               REAL *gr, REAL *gA, REAL *gB) {
    for (long j = 0; j < q; j++) gv[j] = gr[j] = gB[j] = 0;
    for (long i = 0; i < p; i++) {
        REAL *gFr = gF + i * q;
        gs[i] = gA[i] = 0;
        if (reset) {
            if (G) { /* (before gF is zeroed: it may be G) */
                const REAL *Gr = G + i * q;
                REAL ga = 0;
                SIMD_SUM(ga)
                for (long j = 0; j < q; j++) ga += Gr[j] * Bv[j];
                gA[i] = ga;
                for (long j = 0; j < q; j++) gB[j] += Gr[j] * A[i];
            }
            for (long j = 0; j < q; j++) gFr[j] = 0;
            continue;
        }
        const REAL *Fr = F + i * q, dui = du[i];
        if (G) {
            const REAL *Gr = G + i * q, si = s[i], ai = A[i];
            REAL ga = 0, gsn = 0;
            PRAGMA(omp simd reduction(+ : ga, gsn))
            for (long j = 0; j < q; j++) {
                const REAL g = Gr[j], gf = g * Fr[j];
                gFr[j] = (g - g * (si * r[j])) + dui * v[j];
                gv[j] += Fr[j] * dui;
                ga += g * Bv[j];
                gsn += gf * r[j];
                gr[j] -= gf * si;
                gB[j] += g * ai;
            }
            gA[i] = ga;
            gs[i] = -gsn;
        } else {
            for (long j = 0; j < q; j++) {
                gFr[j] = dui * v[j];
                gv[j] += Fr[j] * dui;
            }
        }
    }
}

/* The adjoint of a layer norm without gain or bias: dt = rstd (dy - mean(dy) - y mean(dy y)). */
static void gfw_norm_backward(long f, const REAL *y, const REAL *dy, REAL rstd, REAL *dt) {
    REAL m1 = 0, m2 = 0;
    for (long i = 0; i < f; i++) {
        m1 += dy[i];
        m2 += dy[i] * y[i];
    }
    m1 /= f;
    m2 /= f;
    for (long i = 0; i < f; i++) dt[i] = rstd * (dy[i] - m1 - y[i] * m2);
}

/* The backward of gfw_row_step: from its inputs (reset, F1, F2, fast_h, x, d), sv and fh and
   the adjoints of fh (g_fh), F1o and F2o (gF1o, gF2o; NULL: zero), the adjoints of F1, F2,
   fast_h, x (zeros for F1, F2 and fast_h with reset) and of the pre-activations d (gd). gF1 may
   be gF1o (and gF2 gF2o): each element is read before it is written. */
static void gfw_row_backward(long f, long I, int reset, const REAL *F1, const REAL *F2,
                             const REAL *fast_h, const REAL *x, const REAL *d, const REAL *sv,
                             const REAL *fh, const REAL *g_fh, const REAL *gF1o,
                             const REAL *gF2o, REAL *gF1, REAL *gF2, REAL *g_fast_h, REAL *g_x,
                             REAL *gd) {
    const long n = f + I, o2 = 2 * (f + n);
    REAL fin[n], s1[f], r1[n], A1[f], B1[n], s2[f], r2[f], A2[f], B2[f];
    REAL ta1[f], tb1[n], ta2[f], tb2[f], du[f], gv[n], gh[f];
    REAL gs1[f], gA1[f], gr1[n], gB1[n], gs2[f], gA2[f], gr2[f], gB2[f];
    const REAL *t1 = sv, *hid = sv + f, *t2 = sv + 2 * f, rstd1 = sv[3 * f],
               rstd2 = sv[3 * f + 1];
    for (long i = 0; i < f; i++) {
        s1[i] = SIGMOID(d[f + n + i]);
        ta1[i] = gfw_tanh(d[i]);
        A1[i] = s1[i] * ta1[i];
        s2[i] = SIGMOID(d[o2 + 2 * f + i]);
        ta2[i] = gfw_tanh(d[o2 + i]);
        A2[i] = s2[i] * ta2[i];
        r2[i] = SIGMOID(d[o2 + 3 * f + i]);
        tb2[i] = gfw_tanh(d[o2 + f + i]);
        B2[i] = r2[i] * tb2[i];
    }
    for (long j = 0; j < n; j++) {
        r1[j] = SIGMOID(d[2 * f + n + j]);
        tb1[j] = gfw_tanh(d[f + j]);
        B1[j] = r1[j] * tb1[j];
    }
    for (long j = 0; j < f; j++) fin[j] = reset ? 0 : fast_h[j];
    for (long j = 0; j < I; j++) fin[f + j] = x[j];
    /* layer 2 */
    gfw_norm_backward(f, fh, g_fh, rstd2, du);
    for (long i = 0; i < f; i++) du[i] *= 1 - t2[i] * t2[i];
    gfw_layer_backward(f, f, reset, F2, hid, du, gF2o, s2, r2, A2, B2, gF2, gh, gs2, gr2, gA2,
                       gB2);
    /* layer 1 */
    gfw_norm_backward(f, hid, gh, rstd1, du);
    for (long i = 0; i < f; i++) du[i] *= 1 - t1[i] * t1[i];
    gfw_layer_backward(f, n, reset, F1, fin, du, gF1o, s1, r1, A1, B1, gF1, gv, gs1, gr1, gA1,
                       gB1);
    for (long j = 0; j < f; j++) g_fast_h[j] = reset ? 0 : gv[j];
    for (long j = 0; j < I; j++) g_x[j] = gv[f + j];
    /* the activations: A = s tanh(alpha), B = r tanh(beta), s, r sigmoids */
    for (long i = 0; i < f; i++) {
        gd[i] = gA1[i] * s1[i] * (1 - ta1[i] * ta1[i]);
        gd[f + n + i] = (gs1[i] + gA1[i] * ta1[i]) * s1[i] * (1 - s1[i]);
        gd[o2 + i] = gA2[i] * s2[i] * (1 - ta2[i] * ta2[i]);
        gd[o2 + 2 * f + i] = (gs2[i] + gA2[i] * ta2[i]) * s2[i] * (1 - s2[i]);
        gd[o2 + f + i] = gB2[i] * r2[i] * (1 - tb2[i] * tb2[i]);
        gd[o2 + 3 * f + i] = (gr2[i] + gB2[i] * tb2[i]) * r2[i] * (1 - r2[i]);
    }
    for (long j = 0; j < n; j++) {
        gd[f + j] = gB1[j] * r1[j] * (1 - tb1[j] * tb1[j]);
        gd[2 * f + n + j] = (gr1[j] + gB1[j] * tb1[j]) * r1[j] * (1 - r1[j]);
    }
}

/* The backward of gfw_window, sequence by sequence: the weights before every step recomputed
   (in place, as gfw_window computes them) into a buffer of T steps, then the reverse loop. From
   its inputs, fhs and save and the adjoints of every step's fast hidden state (g_fhs [T, B, f])
   and of the last weights (gF1T, gF2T; NULL: zero): the adjoints of the initial weights and
   fast hidden state (gF1, gF2, g_fast_h; the weights' adjoints are carried through them), of x
   [T, B, I] and of delta [T, B, D]. */
void gfw_window_backward(long T, long B, long f, long I, REAL eps, const REAL *F1,
                         const REAL *F2, const REAL *fast_h, const REAL *x, const REAL *delta,
                         const REAL *keep, const REAL *fhs, const REAL *save, const REAL *g_fhs,
                         const REAL *gF1T, const REAL *gF2T, REAL *gF1, REAL *gF2,
                         REAL *g_fast_h, REAL *g_x, REAL *g_delta) {
    const long n = f + I, S = 3 * f + 2, D = 2 * (f + n) + 4 * f, P = f * n, Q = f * f;
    REAL gh[f], carry[f], fh_tmp[f], sv_tmp[S];
    REAL *w1 = malloc(sizeof(REAL) * T * (P + Q)), *w2 = w1 + T * P;
    if (!w1) return;
    for (long b = 0; b < B; b++) {
        memcpy(w1, F1 + b * P, sizeof(REAL) * P);
        memcpy(w2, F2 + b * Q, sizeof(REAL) * Q);
        for (long t = 0; t + 1 < T; t++) {
            const long tb = t * B + b;
            const REAL *h = t ? fhs + (tb - B) * f : fast_h + b * f;
            REAL *n1 = w1 + (t + 1) * P, *n2 = w2 + (t + 1) * Q;
            memcpy(n1, w1 + t * P, sizeof(REAL) * P);
            memcpy(n2, w2 + t * Q, sizeof(REAL) * Q);
            gfw_row_step(f, I, eps, keep && keep[tb] == 0, n1, n2, h, x + tb * I, delta + tb * D,
                         n1, n2, fh_tmp, sv_tmp);
        }
        REAL *g1 = gF1 + b * P, *g2 = gF2 + b * Q;
        const REAL *in1 = gF1T ? gF1T + b * P : 0, *in2 = gF2T ? gF2T + b * Q : 0;
        for (long j = 0; j < f; j++) carry[j] = 0;
        for (long t = T - 1; t >= 0; t--) {
            const long tb = t * B + b;
            const REAL *h = t ? fhs + (tb - B) * f : fast_h + b * f;
            for (long j = 0; j < f; j++) gh[j] = g_fhs[tb * f + j] + carry[j];
            gfw_row_backward(f, I, keep && keep[tb] == 0, w1 + t * P, w2 + t * Q, h, x + tb * I,
                             delta + tb * D, save + tb * S, fhs + tb * f, gh, in1, in2, g1, g2,
                             carry, g_x + tb * I, g_delta + tb * D);
            in1 = g1, in2 = g2;
        }
        for (long j = 0; j < f; j++) g_fast_h[b * f + j] = carry[j];
    }
    free(w1);
}

/* y = W x for W [p, q] (with tanh: y = tanh(W x)); four rows at a time, so that their
   reductions' latencies overlap. */
static INLINE void mnm_matvec(long p, long q, const REAL *W, const REAL *x, REAL *y, int squash) {
    long i = 0;
    for (; i + 4 <= p; i += 4) {
        const REAL *r0 = W + i * q, *r1 = r0 + q, *r2 = r1 + q, *r3 = r2 + q;
        REAL a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        PRAGMA(omp simd reduction(+ : a0, a1, a2, a3))
        for (long j = 0; j < q; j++) {
            a0 += r0[j] * x[j];
            a1 += r1[j] * x[j];
            a2 += r2[j] * x[j];
            a3 += r3[j] * x[j];
        }
        y[i] = a0, y[i + 1] = a1, y[i + 2] = a2, y[i + 3] = a3;
    }
    for (; i < p; i++) {
        REAL acc = 0;
        const REAL *Wr = W + i * q;
        SIMD_SUM(acc)
        for (long j = 0; j < q; j++) acc += Wr[j] * x[j];
        y[i] = acc;
    }
    if (squash)
        for (long k = 0; k < p; k++) y[k] = gfw_tanh(y[k]);
}

/* Wo = W - p x^T for W [r, q]. */
static INLINE void mnm_update(long r, long q, const REAL *W, const REAL *p, const REAL *x, REAL *Wo) {
    for (long i = 0; i < r; i++)
        for (long j = 0; j < q; j++) Wo[i * q + j] = W[i * q + j] - p[i] * x[j];
}

/* y += W^T g for W [p, q] (y [q]). */
static INLINE void mnm_matvec_t(long p, long q, const REAL *W, const REAL *g, REAL *y) {
    for (long i = 0; i < p; i++) {
        const REAL gi = g[i], *Wr = W + i * q;
        for (long j = 0; j < q; j++) y[j] += Wr[j] * gi;
    }
}

/* G += a b^T for G [p, q]. */
static INLINE void mnm_outer(long p, long q, const REAL *a, const REAL *b, REAL *G) {
    for (long i = 0; i < p; i++)
        for (long j = 0; j < q; j++) G[i * q + j] += a[i] * b[j];
}

/* y = s W x for W [p, q]. */
static INLINE void mnm_scaled_matvec(long p, long q, REAL s, const REAL *W, const REAL *x, REAL *y) {
    mnm_matvec(p, q, W, x, y, 0);
    for (long i = 0; i < p; i++) y[i] *= s;
}

/* The backward of one query's pass through the new weights: from the query q [dk], its hidden
   layers a1, a2 [dm] and the output's adjoint go [dk], the new weights' adjoints (accumulated
   into G1, G2, G3) and q's (accumulated into gq). */
static INLINE void mnm_query_backward(long dk, long dm, const REAL *W1o, const REAL *W2o,
                               const REAL *W3o, const REAL *q, const REAL *a1, const REAL *a2,
                               const REAL *go, REAL *G1, REAL *G2, REAL *G3, REAL *gq) {
    REAL g2[dm], g1[dm];
    mnm_outer(dk, dm, go, a2, G3);
    for (long j = 0; j < dm; j++) g2[j] = 0;
    mnm_matvec_t(dk, dm, W3o, go, g2);
    for (long j = 0; j < dm; j++) g2[j] *= 1 - a2[j] * a2[j];
    mnm_outer(dm, dm, g2, a1, G2);
    for (long j = 0; j < dm; j++) g1[j] = 0;
    mnm_matvec_t(dm, dm, W2o, g2, g1);
    for (long j = 0; j < dm; j++) g1[j] *= 1 - a1[j] * a1[j];
    mnm_outer(dm, dk, g1, q, G1);
    mnm_matvec_t(dm, dk, W1o, g1, gq);
}

/* MNM-p's memory for one step of one sequence (one head; see mnm.py): from the memory weights
   W1 [dm, dk], W2 [dm, dm], W3 [dk, dm], kv (the write key k_w, the written value, the read key
   k_r [dk] each), the write strength beta and the BFPF targets tg (z1^ [dm], z2^ [dm], z3^
   [dk]): the activations at k_w with the old weights (z1 = tanh(W1 k_w), z2 = tanh(W2 z1),
   z3 = W3 z2), the perceptron updates W' = W - beta e in^T (e = (z - z^) 2 / d_out; in = k_w,
   z1, z2), and the new weights' outputs at k_w (recon) and k_r (read). sv [4dm + ... ] gets the
   activations (z1, z2, z3, and per query the two hidden layers). */
static INLINE void mnm_row_step(long dk, long dm, const REAL *W1, const REAL *W2, const REAL *W3,
                         const REAL *kv, REAL beta, const REAL *tg, REAL *W1o, REAL *W2o,
                         REAL *W3o, REAL *recon, REAL *read, REAL *sv) {
    const REAL *kw = kv, *kr = kv + 2 * dk, *t1 = tg, *t2 = tg + dm, *t3 = tg + 2 * dm;
    REAL *z1 = sv, *z2 = sv + dm, *z3 = sv + 2 * dm, *a1w = sv + 2 * dm + dk, *a2w = a1w + dm,
         *a1r = a2w + dm, *a2r = a1r + dm;
    const REAL c1 = (REAL)2 / dm, c3 = (REAL)2 / dk;
    REAL p[dm > dk ? dm : dk];
    mnm_matvec(dm, dk, W1, kw, z1, 1);
    mnm_matvec(dm, dm, W2, z1, z2, 1);
    mnm_matvec(dk, dm, W3, z2, z3, 0);
    for (long i = 0; i < dm; i++) p[i] = beta * ((z1[i] - t1[i]) * c1);
    mnm_update(dm, dk, W1, p, kw, W1o);
    for (long i = 0; i < dm; i++) p[i] = beta * ((z2[i] - t2[i]) * c1);
    mnm_update(dm, dm, W2, p, z1, W2o);
    for (long i = 0; i < dk; i++) p[i] = beta * ((z3[i] - t3[i]) * c3);
    mnm_update(dk, dm, W3, p, z2, W3o);
    mnm_matvec(dm, dk, W1o, kw, a1w, 1);
    mnm_matvec(dm, dm, W2o, a1w, a2w, 1);
    mnm_matvec(dk, dm, W3o, a2w, recon, 0);
    mnm_matvec(dm, dk, W1o, kr, a1r, 1);
    mnm_matvec(dm, dm, W2o, a1r, a2r, 1);
    mnm_matvec(dk, dm, W3o, a2r, read, 0);
}

/* MNM-p's memory step (mnm_row_step) for B sequences: kvr row b at kvr + b * kstride, beta [B],
   targets [B, 2dm + dk], save [B, 6dm + dk]. With dk = dm = M the sizes are constants (the short
   loops then compile without their runtime set-up). */
void mnm_p_step(long B, long dk, long dm, long kstride, const REAL *W1, const REAL *W2,
                const REAL *W3, const REAL *kvr, const REAL *beta, const REAL *targets,
                REAL *W1o, REAL *W2o, REAL *W3o, REAL *recon, REAL *read, REAL *save) {
    const long P1 = dm * dk, P2 = dm * dm, S = 6 * dm + dk, Tg = 2 * dm + dk;
#define MNM_ROWS(DK, DM)                                                                        \
    for (long b = 0; b < B; b++)                                                                \
        mnm_row_step(DK, DM, W1 + b * P1, W2 + b * P2, W3 + b * P1, kvr + b * kstride, beta[b], \
                     targets + b * Tg, W1o + b * P1, W2o + b * P2, W3o + b * P1, recon + b * dk, \
                     read + b * dk, save + b * S);
    if (dk == M && dm == M) {
        MNM_ROWS(M, M)
    } else {
        MNM_ROWS(dk, dm)
    }
#undef MNM_ROWS
}

/* The backward of mnm_row_step for sequence b (the arrays are mnm_p_step_backward's). */
static INLINE void mnm_row_backward(long dk, long dm, long b, long kstride, const REAL *W1,
                                    const REAL *W2, const REAL *W3, const REAL *kvr,
                                    const REAL *beta, const REAL *targets, const REAL *save,
                                    const REAL *g_recon, const REAL *g_read, const REAL *G1,
                                    const REAL *G2, const REAL *G3, REAL *gW1, REAL *gW2,
                                    REAL *gW3, REAL *g_kvr, REAL *g_beta, REAL *g_targets) {
    const long P1 = dm * dk, P2 = dm * dm, S = 6 * dm + dk, Tg = 2 * dm + dk;
    const REAL c1 = (REAL)2 / dm, c3 = (REAL)2 / dk;
    REAL e1[dm], e2[dm], e3[dk], ge1[dm], ge2[dm], ge3[dk], gz1[dm], gz2[dm], gz3[dk];
    const REAL *sv = save + b * S, *kv = kvr + b * kstride, *tg = targets + b * Tg;
    const REAL *z1 = sv, *z2 = sv + dm, *z3 = sv + 2 * dm, *a1w = sv + 2 * dm + dk,
               *a2w = a1w + dm, *a1r = a2w + dm, *a2r = a1r + dm;
    const REAL *kw = kv, *kr = kv + 2 * dk, bt = beta[b];
    const REAL *w1 = W1 + b * P1, *w2 = W2 + b * P2, *w3 = W3 + b * P1;
    /* the new weights, recomputed as mnm_row_step computes them (cheaper than reading them) */
    REAL w1o[P1], w2o[P2], w3o[P1], p[dm > dk ? dm : dk];
    for (long i = 0; i < dm; i++) p[i] = bt * ((z1[i] - tg[i]) * c1);
    mnm_update(dm, dk, w1, p, kw, w1o);
    for (long i = 0; i < dm; i++) p[i] = bt * ((z2[i] - tg[dm + i]) * c1);
    mnm_update(dm, dm, w2, p, z1, w2o);
    for (long i = 0; i < dk; i++) p[i] = bt * ((z3[i] - tg[2 * dm + i]) * c3);
    mnm_update(dk, dm, w3, p, z2, w3o);
    REAL *g1 = gW1 + b * P1, *g2 = gW2 + b * P2, *g3 = gW3 + b * P1;
    REAL *gkv = g_kvr + b * 3 * dk, *gkw = gkv, *gkr = gkv + 2 * dk, *gt = g_targets + b * Tg;
    /* the new weights' adjoints: given, plus both queries' passes */
    if (G1) memcpy(g1, G1 + b * P1, sizeof(REAL) * P1); else memset(g1, 0, sizeof(REAL) * P1);
    if (G2) memcpy(g2, G2 + b * P2, sizeof(REAL) * P2); else memset(g2, 0, sizeof(REAL) * P2);
    if (G3) memcpy(g3, G3 + b * P1, sizeof(REAL) * P1); else memset(g3, 0, sizeof(REAL) * P1);
    memset(gkv, 0, sizeof(REAL) * 3 * dk);
    mnm_query_backward(dk, dm, w1o, w2o, w3o, kw, a1w, a2w, g_recon + b * dk, g1, g2, g3, gkw);
    if (g_read)
        mnm_query_backward(dk, dm, w1o, w2o, w3o, kr, a1r, a2r, g_read + b * dk, g1, g2, g3,
                           gkr);
    /* through the updates W' = W - beta e in^T */
    for (long i = 0; i < dm; i++) e1[i] = (z1[i] - tg[i]) * c1;
    for (long i = 0; i < dm; i++) e2[i] = (z2[i] - tg[dm + i]) * c1;
    for (long i = 0; i < dk; i++) e3[i] = (z3[i] - tg[2 * dm + i]) * c3;
    mnm_scaled_matvec(dm, dk, 1, g1, kw, ge1);
    mnm_scaled_matvec(dm, dm, 1, g2, z1, ge2);
    mnm_scaled_matvec(dk, dm, 1, g3, z2, ge3);
    REAL gb = 0;
    for (long i = 0; i < dm; i++) gb += e1[i] * ge1[i] + e2[i] * ge2[i];
    for (long i = 0; i < dk; i++) gb += e3[i] * ge3[i];
    g_beta[b] = -gb;
    for (long i = 0; i < dm; i++) ge1[i] *= -bt, ge2[i] *= -bt;
    for (long i = 0; i < dk; i++) ge3[i] *= -bt;
    for (long j = 0; j < dm; j++) gz1[j] = 0, gz2[j] = 0;
    for (long i = 0; i < dm; i++) e1[i] *= -bt, e2[i] *= -bt;
    for (long i = 0; i < dk; i++) e3[i] *= -bt;
    mnm_matvec_t(dm, dk, g1, e1, gkw);
    mnm_matvec_t(dm, dm, g2, e2, gz1);
    mnm_matvec_t(dk, dm, g3, e3, gz2);
    for (long i = 0; i < dm; i++) {
        gt[i] = -c1 * ge1[i];
        gt[dm + i] = -c1 * ge2[i];
        gz1[i] += c1 * ge1[i];
        gz2[i] += c1 * ge2[i];
    }
    for (long i = 0; i < dk; i++) {
        gt[2 * dm + i] = -c3 * ge3[i];
        gz3[i] = c3 * ge3[i];
    }
    /* the first pass, at the old weights */
    mnm_outer(dk, dm, gz3, z2, g3);
    mnm_matvec_t(dk, dm, w3, gz3, gz2);
    for (long j = 0; j < dm; j++) gz2[j] *= 1 - z2[j] * z2[j];
    mnm_outer(dm, dm, gz2, z1, g2);
    mnm_matvec_t(dm, dm, w2, gz2, gz1);
    for (long j = 0; j < dm; j++) gz1[j] *= 1 - z1[j] * z1[j];
    mnm_outer(dm, dk, gz1, kw, g1);
    mnm_matvec_t(dm, dk, w1, gz1, gkw);
}

/* The backward of mnm_p_step: from its inputs and outputs and the adjoints of recon, read
   (g_read NULL: zero) and the new weights (G1, G2, G3; NULL: zero), the adjoints of the old
   weights (gW1, gW2, gW3), of kvr ([B, 3dk], the value's part zero), beta [B] and the targets
   [B, 2dm + dk]. */
void mnm_p_step_backward(long B, long dk, long dm, long kstride, const REAL *W1, const REAL *W2,
                         const REAL *W3, const REAL *kvr, const REAL *beta, const REAL *targets,
                         const REAL *save, const REAL *g_recon, const REAL *g_read,
                         const REAL *G1, const REAL *G2, const REAL *G3, REAL *gW1, REAL *gW2,
                         REAL *gW3, REAL *g_kvr, REAL *g_beta, REAL *g_targets) {
#define MNM_ROWS(DK, DM)                                                                        \
    for (long b = 0; b < B; b++)                                                                \
        mnm_row_backward(DK, DM, b, kstride, W1, W2, W3, kvr, beta, targets,                   \
                         save, g_recon, g_read, G1, G2, G3, gW1, gW2, gW3, g_kvr, g_beta,      \
                         g_targets);
    if (dk == M && dm == M) {
        MNM_ROWS(M, M)
    } else {
        MNM_ROWS(dk, dm)
    }
#undef MNM_ROWS
}
"""
_HEADER = r"""
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* exp for float without a library call, so that loops over it vectorise: x = n ln 2 + r, a
   degree-6 polynomial for e^r (Cephes' expf coefficients, within about one ulp), 2^n through the
   exponent bits; x is clamped to [-87, 88], where float's e^x is normal. */
static inline float fwm_expf(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    union { int i; float f; } two_n;
    two_n.i = ((int)n + 127) << 23;
    return p * two_n.f;
}
"""
"""Shared by both dtypes' functions (included once)."""
_VARIANTS = {
    torch.float32: ("f32", "float", "sqrtf", "fwm_expf", ctypes.c_float),
    torch.float64: ("f64", "double", "sqrt", "exp", ctypes.c_double),
}
"""Per dtype: the functions' name suffix, the C type, its square root and exponential (float's:
the vectorisable ``fwm_expf``), and the ctypes type."""
_INTERNAL = [
    "fwm_hop_norm",
    "fwm_activate",
    "fwm_seq_step",
    "gfw_tanh",
    "gfw_layer_backward",
    "gfw_norm_backward",
    "gfw_row_step",
    "gfw_row_backward",
    "mnm_matvec",
    "mnm_update",
    "mnm_matvec_t",
    "mnm_outer",
    "mnm_scaled_matvec",
    "mnm_query_backward",
    "mnm_row_step",
    "mnm_row_backward",
]
"""Static C functions (one per dtype, named like the exported ones)."""
_ARGUMENTS = {
    "fwm_lowrank_step": ["long", "long", "long", "real", *(["pointer"] * 15)],
    "fwm_lstm_cell": ["long", "long", *(["pointer"] * 7)],
    "fwm_lstm_cell_backward": ["long", "long", *(["pointer"] * 7)],
    "fwm_acting_memory": [*(["long"] * 4), "real", "real", "long", "long", *(["pointer"] * 13)],
    "fwm_acting_dense": [*(["long"] * 3), "real", "real", *(["pointer"] * 5)],
    "fwm_delta_forward": ["long", "long", *(["pointer"] * 10)],
    "fwm_delta_backward": ["long", "long", *(["pointer"] * 15)],
    "gfw_step": [*(["long"] * 4), "real", *(["pointer"] * 10)],
    "gfw_window": [*(["long"] * 4), "real", *(["pointer"] * 10)],
    "gfw_window_backward": [*(["long"] * 4), "real", *(["pointer"] * 16)],
    "mnm_p_step": [*(["long"] * 4), *(["pointer"] * 12)],
    "mnm_p_step_backward": [*(["long"] * 4), *(["pointer"] * 18)],
}
"""The C functions and their argument types (``real``: the dtype's)."""
_FLAGS = [
    "-O3",
    "-march=native",
    "-fno-trapping-math",
    "-fopenmp-simd",
    "-fPIC",
    "-shared",
    "-std=gnu11",
]
_libraries: dict[int, ctypes.CDLL | None] = {}
"""Built libraries by ``m`` (``None``: the build failed)."""


def _full_source(memory_size: int) -> str:
    parts = [f"{_HEADER}#define M {memory_size}"]
    body = _SOURCE.replace("#include <math.h>\n#include <string.h>\n", "")
    for suffix, real, sqrt, exp, _ in _VARIANTS.values():
        names = "".join(f"#define {name} {name}_{suffix}\n" for name in [*_ARGUMENTS, *_INTERNAL])
        undo = "".join(f"#undef {name}\n" for name in [*_ARGUMENTS, *_INTERNAL])
        macros = {
            "REAL": real,
            "SQRT": sqrt,
            "SIGMOID(x)": f"((REAL)1 / ((REAL)1 + {exp}(-(x))))",
            "TANH(x)": f"((REAL)2 / ((REAL)1 + {exp}((REAL)-2 * (x))) - (REAL)1)",
        }
        define = "".join(f"#define {name} {value}\n" for name, value in macros.items())
        undefine = "".join(f"#undef {name.split('(')[0]}\n" for name in macros)
        parts.append(f"{names}{define}{body}\n{undo}{undefine}")
    return "\n".join(parts)


def _build(memory_size: int) -> ctypes.CDLL:
    """Compile (once per source, size, flags and compiler) and load the library for ``m`` (a
    compile-time constant, so the loops over ``m`` unroll and vectorise)."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise RuntimeError("no C compiler found (set CC)")
    source = _full_source(memory_size)
    key = hashlib.sha256("\0".join([source, compiler, *_FLAGS]).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("FWMRL_KERNEL_CACHE", Path.home() / ".cache" / "fwmrl" / "kernels"))
    target = cache / f"fwm_m{memory_size}_{key}.so"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            src, out = Path(tmp) / "fwm.c", Path(tmp) / "fwm.so"
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
    for suffix, _, _, _, real in _VARIANTS.values():
        types = {"long": ctypes.c_long, "pointer": ctypes.c_void_p, "real": real}
        for name, arguments in _ARGUMENTS.items():
            function = getattr(library, f"{name}_{suffix}")
            function.restype = None
            function.argtypes = [types[kind] for kind in arguments]
    return library


def _load(memory_size: int) -> ctypes.CDLL | None:
    if memory_size not in _libraries:
        try:
            _libraries[memory_size] = _build(memory_size)
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:
            _libraries[memory_size] = None
            warnings.warn(
                f"fwmrl: the compiled FWM kernels are unavailable, using eager PyTorch ({error})",
                stacklevel=3,
            )
    return _libraries[memory_size]


def available(like: Tensor, memory_size: int) -> bool:
    """Whether the kernels can run on tensors like ``like`` (CPU, float32/float64) for
    ``m = memory_size``; the library builds on the first call."""
    return like.device.type == "cpu" and like.dtype in _VARIANTS and _load(memory_size) is not None


def _function(name: str, like: Tensor, memory_size: int) -> tuple[Any, Any]:
    """The C function ``name`` for ``like``'s dtype and its ctypes real type."""
    library = _load(memory_size)
    if library is None:
        raise RuntimeError("the compiled FWM kernels are unavailable")
    suffix, _, _, _, real = _VARIANTS[like.dtype]
    return getattr(library, f"{name}_{suffix}"), real


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
    function, real = _function("fwm_lowrank_step", keys, m)
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
    function(
        batch,
        writes,
        read_hops,
        real(layer_norm_eps),
        *(t.data_ptr() for t in inputs),
        n.data_ptr(),
        *(t.data_ptr() for t in outputs),
    )
    return n, outputs


def lstm_cell(
    gates: Tensor, c: Tensor, keep: Tensor | None, bias: Tensor | None, memory_size: int
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The LSTM cell from its gates' pre-activations in the compiled kernel (no autograd).

    Parameters
    ----------
    gates:
        ``[B, 4D]`` (``i, f, g, o``): ``x W_ihᵀ + b_ih + h W_hhᵀ + b_hh`` (``h`` reset).
    c:
        ``[B, D]``: the cell state before the step.
    keep:
        ``[B]``: 0 where the sequence resets before the step (its ``c`` is zeroed), 1
        elsewhere; ``None``: no reset.
    bias:
        ``[D]`` or ``None``: with it, ``base = h + bias`` is returned too (FWM's residual
        output before the memory read's projection is added).
    memory_size:
        ``m`` of the FWM whose library holds the function (built per ``m``).

    Returns
    -------
    ``h, c [B, D]`` after the step and ``base`` (``None`` without ``bias``).
    """
    batch, hidden = c.shape
    function, _ = _function("fwm_lstm_cell", gates, memory_size)
    gates, c = gates.contiguous(), c.contiguous()
    keep = None if keep is None else keep.contiguous()
    bias = None if bias is None else bias.contiguous()
    h_out, c_out = gates.new_empty(batch, hidden), gates.new_empty(batch, hidden)
    base = None if bias is None else gates.new_empty(batch, hidden)
    function(
        batch,
        hidden,
        gates.data_ptr(),
        c.data_ptr(),
        _pointer(keep),
        _pointer(bias),
        h_out.data_ptr(),
        c_out.data_ptr(),
        _pointer(base),
    )
    return h_out, c_out, base


def _factor_buffer(k1: Tensor, k2: Tensor, u: Tensor) -> Tensor | None:
    """The buffer ``[3, B, capacity, m]`` that ``k1, k2, u [B, R, m]`` are the first ``R`` slots
    of (made by :func:`acting_memory`), if the next write may go into slot ``R`` in place: no
    step from these factors has claimed it yet and it exists; else ``None``."""
    base = k1._base
    batch, writes, m = k1.shape
    if base is None or getattr(base, "_fwm_filled", None) != writes or base.dim() != 4:
        return None
    _, rows, capacity, width = base.shape
    if rows != batch or width != m or capacity <= writes or k2._base is not base:
        return None
    if u._base is not base or k1.stride() != (capacity * m, m, 1):
        return None
    step = batch * capacity * m * base.element_size()
    start = base.data_ptr()
    if (k1.data_ptr(), k2.data_ptr(), u.data_ptr()) != (start, start + step, start + 2 * step):
        return None
    return base


def _rows(t: Tensor) -> Tensor:
    """``t [B, R, m]`` with contiguous ``[R, m]`` rows per sequence (any sequence stride)."""
    m = t.shape[2]
    return t if t.stride()[1:] == (m, 1) else t.contiguous()


def lstm_cell_backward(
    gates: Tensor, c_prev: Tensor, c: Tensor, dh: Tensor, dc: Tensor | None, memory_size: int
) -> tuple[Tensor, Tensor]:
    """The gradients of :func:`lstm_cell` (without ``keep`` or ``bias``) in the compiled kernel:
    ``(d gates [B, 4D], d c_prev [B, D])`` from the gates, the cell states before and after the
    step and the adjoints of the new ``h`` and ``c`` (``dc`` ``None``: zero)."""
    batch, hidden = c.shape
    function, _ = _function("fwm_lstm_cell_backward", gates, memory_size)
    tensors = [t.contiguous() for t in (gates, c_prev, c, dh)]
    dc = None if dc is None else dc.contiguous()
    dgates, dc_prev = torch.empty_like(tensors[0]), torch.empty_like(tensors[1])
    function(
        batch,
        hidden,
        *(t.data_ptr() for t in tensors),
        _pointer(dc),
        dgates.data_ptr(),
        dc_prev.data_ptr(),
    )
    return dgates, dc_prev


def acting_memory(
    proj: Tensor,
    keep: Tensor | None,
    memory: tuple[Tensor, Tensor, Tensor, Tensor, Tensor],
    read_hops: int,
    flags: int,
    layer_norm_eps: float,
    write_scale: float,
) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor, Tensor, Tensor]]:
    """The memory part of :class:`fwmrl.memory.fwm.FWMCore`'s acting step in the compiled kernel
    (no autograd): the activations of the write and read projections, the reset of the factors'
    weights and norm, and :func:`lowrank_step`'s FWM step, per sequence in one C loop.

    The new factors ``k1, k2, u`` are the first ``R + 1`` slots of a buffer ``[3, B, capacity,
    m]`` (views, not contiguous): a step from factors that are such a buffer's first ``R`` slots
    writes slot ``R`` in place and claims it, so an episode's steps copy no old writes and
    allocate no memory; a second step from the same factors (whose slot is taken) and factors of
    any other origin are copied into a new buffer of twice the writes (at least 32). Slots below
    ``R`` are never written, so every earlier state keeps its values.

    Parameters
    ----------
    proj:
        ``[B, 3m + 1 + (N_r + 1) m]``: ``write_proj``'s outputs ``(ŝ, r̂, v̂, b̂)`` followed by
        ``read_proj``'s ``(n̂₀, ê₁ … ê_{N_r})``.
    keep:
        ``[B]``: 0 where the sequence resets before the step, 1 elsewhere; ``None``: no reset.
    memory:
        ``(k1, k2, u [B, R, m], weight [B, R], norm_sq [B])`` before the step (the reset not
        applied).
    read_hops, layer_norm_eps, write_scale:
        ``N_r``, the hops' layer-norm epsilon and ``λ``.
    flags:
        1: ``tanh`` on the first query; 2: ``tanh`` on the hop keys.

    Returns
    -------
    ``n [B, m]`` (the last hop's read) and the factors after the step (``R + 1`` writes).
    """
    k1, k2, u, weight, norm_sq = memory
    batch, writes, m = k1.shape
    function, real = _function("fwm_acting_memory", proj, m)
    proj = proj.contiguous()
    keep = None if keep is None else keep.contiguous()
    buffer = _factor_buffer(k1, k2, u)
    if buffer is None:
        k1, k2, u = _rows(k1), _rows(k2), _rows(u)
        if not k1.stride(0) == k2.stride(0) == u.stride(0):
            k1, k2, u = k1.contiguous(), k2.contiguous(), u.contiguous()
        in_stride = k1.stride(0)
        buffer = proj.new_empty(3, batch, max(32, 2 * (writes + 1)), m)
    else:
        in_stride = buffer.shape[2] * m
    buffer._fwm_filled = writes + 1  # slot R is this step's
    factors = [t.contiguous() for t in (weight, norm_sq)]
    n = proj.new_empty(batch, m)
    new_k1, new_k2, new_u = buffer[:, :, : writes + 1].unbind(0)
    outputs = (new_k1, new_k2, new_u, proj.new_empty(batch, writes + 1), proj.new_empty(batch))
    function(
        batch,
        writes,
        read_hops,
        flags,
        real(layer_norm_eps),
        real(write_scale),
        in_stride,
        buffer.shape[2] * m,
        proj.data_ptr(),
        _pointer(keep),
        k1.data_ptr(),
        k2.data_ptr(),
        u.data_ptr(),
        *(t.data_ptr() for t in factors),
        n.data_ptr(),
        *(t.data_ptr() for t in outputs),
    )
    return n, outputs


def acting_dense(
    proj: Tensor,
    keep: Tensor | None,
    F: Tensor,  # noqa: N803 (the paper's name)
    read_hops: int,
    flags: int,
    layer_norm_eps: float,
    write_scale: float,
) -> tuple[Tensor, Tensor]:
    """:func:`acting_memory` for a dense ``F [B, m, m, m]`` (episodes longer than the factor
    form's ``lowrank_max_writes``): the activations, the reset, the write, the norm bound and the
    hops per sequence in one C loop over its ``m³`` floats, which stay in cache; the same
    equations as :func:`fwmrl.memory.fwm_scan.single_step_scan` (no autograd).

    Returns
    -------
    ``n [B, m]`` (the last hop's read) and the new ``F`` (a new tensor; ``F`` is not changed).
    """
    batch, m = F.shape[0], F.shape[1]
    function, real = _function("fwm_acting_dense", proj, m)
    proj, F = proj.contiguous(), F.contiguous()
    keep = None if keep is None else keep.contiguous()
    n, new_F = proj.new_empty(batch, m), torch.empty_like(F)
    function(
        batch,
        read_hops,
        flags,
        real(layer_norm_eps),
        real(write_scale),
        proj.data_ptr(),
        _pointer(keep),
        F.data_ptr(),
        n.data_ptr(),
        new_F.data_ptr(),
    )
    return n, new_F


def _pointer(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def delta_forward(
    A: Tensor,  # noqa: N803 (the recurrence's names)
    W: Tensor,  # noqa: N803
    D: Tensor,  # noqa: N803
    rate: Tensor,
    v: Tensor,
    keep: Tensor | None,
    norm_sq: Tensor,
) -> tuple[Tensor, Tensor, Tensor]:
    """The forward loop of :class:`fwmrl.memory.fwm_scan._ScaledDeltaRecurrence` per sequence:
    ``(ũ [B, C, m], ṽ [B, C, m], s [B, C + 1])`` from its inputs (same shapes and names)."""
    batch, steps, m = v.shape
    function, _ = _function("fwm_delta_forward", v, m)
    inputs = [t.contiguous() for t in (A, W, D, rate, v)]
    keep = None if keep is None else keep.contiguous()
    norm_sq = norm_sq.contiguous()
    scaled_u, scaled_v = torch.empty_like(inputs[4]), torch.empty_like(inputs[4])
    S = v.new_empty(batch, steps + 1)  # noqa: N806
    function(
        batch,
        steps,
        *(t.data_ptr() for t in inputs),
        _pointer(keep),
        norm_sq.data_ptr(),
        scaled_u.data_ptr(),
        scaled_v.data_ptr(),
        S.data_ptr(),
    )
    return scaled_u, scaled_v, S


def delta_backward(
    direct_u: Tensor,
    direct_s: Tensor,
    to_norm: Tensor,
    passes: Tensor,
    norm_weight: Tensor,
    scaled_u: Tensor,
    rate: Tensor,
    rv: Tensor,
    W: Tensor,  # noqa: N803
    keep: Tensor | None,
    bar_s: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The reverse loop of :class:`fwmrl.memory.fwm_scan._ScaledDeltaRecurrence`'s backward per
    sequence: ``(bar_v [B, C, m], bar_u [B, C, m], bar_norm [B, C], carry [B])``."""
    batch, steps, m = scaled_u.shape
    function, _ = _function("fwm_delta_backward", scaled_u, m)
    inputs = [
        t.contiguous()
        for t in (direct_u, direct_s, to_norm, passes, norm_weight, scaled_u, rate, rv, W)
    ]
    keep = None if keep is None else keep.contiguous()
    bar_s = bar_s.contiguous()
    bar_v, bar_u = torch.empty_like(inputs[5]), torch.empty_like(inputs[5])
    bar_norm, carry = scaled_u.new_empty(batch, steps), scaled_u.new_empty(batch)
    function(
        batch,
        steps,
        *(t.data_ptr() for t in inputs),
        _pointer(keep),
        bar_s.data_ptr(),
        bar_v.data_ptr(),
        bar_u.data_ptr(),
        bar_norm.data_ptr(),
        carry.data_ptr(),
    )
    return bar_v, bar_u, bar_norm, carry


def gated_fw_step(
    F1: Tensor,  # noqa: N803 (the core's names)
    F2: Tensor,  # noqa: N803
    fast_h: Tensor,
    x: Tensor,
    delta: Tensor,
    keep: Tensor | None,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:class:`fwmrl.memory.gated_fw.GatedFWCore`'s fast net and fast-weight updates for one step
    in the compiled kernel (no autograd).

    Parameters
    ----------
    F1, F2:
        ``[B, f, f + I]`` and ``[B, f, f]``: the fast weights before the step.
    fast_h, x:
        ``[B, f]`` and ``[B, I]``: the fast hidden state and the step's input.
    delta:
        ``[B, 2(2f + I) + 4f]``: the slow net's update pre-activations ``(α₁, β₁, γ₁, δ₁, α₂, β₂,
        γ₂, δ₂)`` (rows may be strided, columns not: a slice of the slow net's output).
    keep:
        ``[B]``: 0 where the sequence resets before the step (its ``F1, F2, fast_h`` are read as
        zeros), 1 elsewhere; ``None``: no reset.
    eps:
        The layer norms' epsilon.

    Returns
    -------
    ``(fast_h [B, f], F1, F2)`` after the step and what :func:`gated_fw_window_backward` needs
    (``[B, 3f + 2]``, one step's).
    """
    batch, fast, width = F1.shape
    function, real = _function("gfw_step", F1, _GATED_KERNEL_SIZE)
    F1, F2, fast_h, x = (t.contiguous() for t in (F1, F2, fast_h, x))  # noqa: N806
    if delta.stride(1) != 1:
        delta = delta.contiguous()
    keep = None if keep is None else keep.contiguous()
    F1o, F2o = torch.empty_like(F1), torch.empty_like(F2)  # noqa: N806
    fh = F1.new_empty(batch, fast)
    save = F1.new_empty(batch, 3 * fast + 2)
    function(
        batch,
        fast,
        width - fast,
        delta.stride(0),
        real(eps),
        *(t.data_ptr() for t in (F1, F2, fast_h, x, delta)),
        _pointer(keep),
        *(t.data_ptr() for t in (F1o, F2o, fh, save)),
    )
    return fh, F1o, F2o, save


_GATED_KERNEL_SIZE = 16
"""The ``m`` of the library that holds the gated fast-weight functions (they take their sizes
as arguments; the libraries are built per ``m``)."""


def gated_fw_window(
    F1: Tensor,  # noqa: N803 (the core's names)
    F2: Tensor,  # noqa: N803
    fast_h: Tensor,
    x: Tensor,
    delta: Tensor,
    keep: Tensor | None,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:class:`fwmrl.memory.gated_fw.GatedFWCore`'s fast net and fast-weight updates over a
    window of ``T`` steps in one C loop, sequence by sequence (no autograd).

    Parameters
    ----------
    F1, F2:
        ``[B, f, f + I]`` and ``[B, f, f]``: the fast weights before the window.
    fast_h:
        ``[B, f]``: the fast hidden state before the window.
    x:
        ``[T, B, I]``: the inputs.
    delta:
        ``[T, B, 2(2f + I) + 4f]``: the slow net's update pre-activations ``(α₁, β₁, γ₁, δ₁, α₂,
        β₂, γ₂, δ₂)`` of every step.
    keep:
        ``[T, B]``: 0 where the sequence resets before the step (its ``F1, F2, fast_h`` are
        read as zeros), 1 elsewhere; ``None``: no reset.
    eps:
        The layer norms' epsilon.

    Returns
    -------
    Every step's ``fast_h [T, B, f]``, the weights ``F1, F2`` after the last step and what
    :func:`gated_fw_window_backward` needs (``[T, B, 3f + 2]``).
    """
    steps, batch, inputs = x.shape
    fast = fast_h.shape[1]
    function, real = _function("gfw_window", F1, _GATED_KERNEL_SIZE)
    F1, F2, fast_h, x, delta = (t.contiguous() for t in (F1, F2, fast_h, x, delta))  # noqa: N806
    keep = None if keep is None else keep.contiguous()
    F1o, F2o = torch.empty_like(F1), torch.empty_like(F2)  # noqa: N806
    fhs = F1.new_empty(steps, batch, fast)
    save = F1.new_empty(steps, batch, 3 * fast + 2)
    function(
        steps,
        batch,
        fast,
        inputs,
        real(eps),
        *(t.data_ptr() for t in (F1, F2, fast_h, x, delta)),
        _pointer(keep),
        *(t.data_ptr() for t in (F1o, F2o, fhs, save)),
    )
    return fhs, F1o, F2o, save


def gated_fw_window_backward(
    inputs: tuple[Tensor, Tensor, Tensor, Tensor, Tensor],
    keep: Tensor | None,
    saved: tuple[Tensor, Tensor],
    grads: tuple[Tensor | None, Tensor | None, Tensor | None],
    eps: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The gradients of :func:`gated_fw_window` in one C loop (the weights before every step
    recomputed per sequence): from its ``inputs`` ``(F1, F2, fast_h, x, delta)``, ``keep``, its
    ``fast_h`` and saved values (``saved``), the adjoints of every step's ``fast_h`` and of the
    last weights ``F1, F2`` (each may be ``None``: zero) and ``eps``, the adjoints of the
    inputs."""
    F1, F2, fast_h, x, delta = (t.contiguous() for t in inputs)  # noqa: N806
    fhs, save = (t.contiguous() for t in saved)
    steps, batch, width = x.shape
    fast = fast_h.shape[1]
    function, real = _function("gfw_window_backward", F1, _GATED_KERNEL_SIZE)
    keep = None if keep is None else keep.contiguous()
    g_fhs, g_F1, g_F2 = (None if g is None else g.contiguous() for g in grads)  # noqa: N806
    g_fhs = torch.zeros_like(fhs) if g_fhs is None else g_fhs
    results = (
        torch.empty_like(F1),
        torch.empty_like(F2),
        torch.empty_like(fast_h),
        torch.empty_like(x),
        torch.empty_like(delta),
    )
    function(
        steps,
        batch,
        fast,
        width,
        real(eps),
        *(t.data_ptr() for t in (F1, F2, fast_h, x, delta)),
        _pointer(keep),
        *(t.data_ptr() for t in (fhs, save, g_fhs)),
        _pointer(g_F1),
        _pointer(g_F2),
        *(t.data_ptr() for t in results),
    )
    return results


def mnm_p_step(
    weights: tuple[Tensor, Tensor, Tensor], kvr: Tensor, beta: Tensor, targets: Tensor
) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor], Tensor]:
    """MNM-p's memory for one step of one head in the compiled kernel (no autograd): the memory
    MLP at the write key with the old weights, the perceptron updates towards the BFPF
    ``targets`` and the new weights' outputs at the write and read keys.

    Parameters
    ----------
    weights:
        ``W1 [B, d_m, d_k], W2 [B, d_m, d_m], W3 [B, d_k, d_m]`` before the step.
    kvr:
        ``[B, 3 d_k]``: the write key, written value and read key (rows may be strided, columns
        not: a slice of the interface vector).
    beta:
        ``[B]``: the write strengths.
    targets:
        ``[B, 2 d_m + d_k]``: the BFPF predictions ``ẑ¹, ẑ², ẑ³``.

    Returns
    -------
    ``(recon [B, d_k], read [B, d_k], new weights, saved activations [B, 6 d_m + d_k])``.
    """
    w1, w2, w3 = (t.contiguous() for t in weights)
    batch, d_m, d_k = w1.shape
    function, _ = _function("mnm_p_step", w1, d_m)  # the library of m = d_m: constant sizes
    if kvr.stride(1) != 1:
        kvr = kvr.contiguous()
    beta, targets = beta.contiguous(), targets.contiguous()
    new = (torch.empty_like(w1), torch.empty_like(w2), torch.empty_like(w3))
    recon, read = w1.new_empty(batch, d_k), w1.new_empty(batch, d_k)
    save = w1.new_empty(batch, 6 * d_m + d_k)
    function(
        batch,
        d_k,
        d_m,
        kvr.stride(0),
        *(t.data_ptr() for t in (w1, w2, w3, kvr, beta, targets, *new, recon, read, save)),
    )
    return recon, read, new, save


def mnm_p_step_backward(
    saved: tuple[Tensor, ...], grads: tuple[Tensor | None, ...]
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The gradients of :func:`mnm_p_step` in the compiled kernel (the new weights recomputed):
    from its inputs and activations ``saved`` = ``(W1, W2, W3, kvr, beta, targets, activations)``
    and the adjoints of ``(recon, read, new W1, new W2, new W3)`` (each may be ``None``: zero),
    the adjoints of ``W1, W2, W3, kvr [B, 3 d_k]`` (the value's columns zero), ``beta`` and
    ``targets``."""
    w1, w2, w3, kvr, beta, targets, save = saved
    batch, d_m, d_k = w1.shape
    function, _ = _function("mnm_p_step_backward", w1, d_m)
    if kvr.stride(1) != 1:
        kvr = kvr.contiguous()
    g_recon, g_read, g1, g2, g3 = (None if g is None else g.contiguous() for g in grads)
    g_recon = torch.zeros_like(w1[:, 0]) if g_recon is None else g_recon
    outputs = (
        torch.empty_like(w1),
        torch.empty_like(w2),
        torch.empty_like(w3),
        w1.new_empty(batch, 3 * d_k),
        w1.new_empty(batch),
        torch.empty_like(targets),
    )
    function(
        batch,
        d_k,
        d_m,
        kvr.stride(0),
        *(t.data_ptr() for t in (w1, w2, w3, kvr, beta, targets, save, g_recon)),
        _pointer(g_read),
        _pointer(g1),
        _pointer(g2),
        _pointer(g3),
        *(t.data_ptr() for t in outputs),
    )
    return outputs
