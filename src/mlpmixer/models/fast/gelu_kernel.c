/* Fused tanh-GELU for CPU tensors, forward and backward, one vectorised pass each.
 *
 * gelu(x) = 0.5·x·(1 + tanh(u)),  u = √(2/π)·(x + 0.044715·x³)
 *         = x·σ(2u) = x / (1 + exp(−2u))                     (exact identity)
 * gelu'(x) = s + 2·x·s·(1 − s)·√(2/π)·(1 + 3·0.044715·x²),   s = σ(2u)
 *
 * Built on first use by mlpmixer/models/gelu.py (OpenMP, -O3, the host's vector ISA,
 * -funsafe-math-optimizations at compile time only: linking with it would put the whole process
 * in flush-to-zero mode through GCC's crtfastmath; NaN and infinities are still honoured), called
 * through ctypes with raw pointers to contiguous buffers. float32 and bfloat16 (stored as
 * uint16, computed in float32, rounded to nearest even) use a polynomial exp that the compiler
 * vectorises (a libm call would not be); float64 uses libm's exp (for exactness tests).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define K0 0.7978845608028654  /* √(2/π) */
#define K1 0.044715
#define BLOCK 2048             /* elements per OpenMP work item: 8 KiB of fp32 */

/* exp(z) for z clamped to [−87, 87]: z = n·ln2 + r, |r| ≤ ln2/2, exp(r) by a degree-6
 * polynomial (Cephes expf coefficients, ~1 ulp), 2^n put into the exponent bits. */
static inline float exp_poly(float z) {
    z = z > 87.0f ? 87.0f : (z < -87.0f ? -87.0f : z);
    float n = __builtin_rintf(z * 1.44269504088896341f);
    float r = z - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float gelu_f(float x) {
    float z = -2.0f * (float)K0 * (x + (float)K1 * x * x * x);
    return x / (1.0f + exp_poly(z));
}

static inline float gelu_grad_f(float x) {
    float z = -2.0f * (float)K0 * (x + (float)K1 * x * x * x);
    float e = exp_poly(z);
    float s = 1.0f / (1.0f + e);
    float one_minus_s = e * s; /* in [0, 1], no cancellation */
    float du = (float)K0 * (1.0f + 3.0f * (float)K1 * x * x);
    float grad = s + 2.0f * x * (s * one_minus_s) * du;
    /* Far left (x < −9.6) the derivative is below 1e-33; reassociated products (x·e) could
     * overflow there, so return 0 (the float32 value of the true derivative). */
    return z > 80.0f ? 0.0f : grad;
}

static inline double clamp64(double z) { return z > 700.0 ? 700.0 : (z < -700.0 ? -700.0 : z); }

static inline float bf16_to_f(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint16_t f_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u); /* NaN */
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

/* Elementwise loops over [lo, hi): `omp simd` vectorises them (no loop-carried dependence;
 * in place, y == x, is fine element by element). */
static void fwd_f32(const float *x, float *y, int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) y[i] = gelu_f(x[i]);
}

static void bwd_f32(const float *g, const float *x, float *dx, int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) dx[i] = g[i] * gelu_grad_f(x[i]);
}

static void fwd_bf16(const uint16_t *x, uint16_t *y, int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) y[i] = f_to_bf16(gelu_f(bf16_to_f(x[i])));
}

static void bwd_bf16(const uint16_t *g, const uint16_t *x, uint16_t *dx, int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i)
        dx[i] = f_to_bf16(bf16_to_f(g[i]) * gelu_grad_f(bf16_to_f(x[i])));
}

static void fwd_f64(const double *x, double *y, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
        double v = x[i];
        y[i] = v / (1.0 + exp(clamp64(-2.0 * K0 * (v + K1 * v * v * v))));
    }
}

static void bwd_f64(const double *g, const double *x, double *dx, int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
        double v = x[i];
        double e = exp(clamp64(-2.0 * K0 * (v + K1 * v * v * v)));
        double s = 1.0 / (1.0 + e);
        dx[i] = g[i] * (s + 2.0 * v * (s * s * e) * K0 * (1.0 + 3.0 * K1 * v * v));
    }
}

/* The exported entry points split [0, n) into blocks of BLOCK elements between `threads`
 * OpenMP threads of torch's own runtime (the same libgomp). */
#define NBLOCKS(n) (((n) + BLOCK - 1) / BLOCK)
#define LO (blk * BLOCK)
#define HI (LO + BLOCK < n ? LO + BLOCK : n)

void gelu_fwd_f32(const float *x, float *y, int64_t n, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (n > BLOCK)
    for (int64_t blk = 0; blk < NBLOCKS(n); ++blk) fwd_f32(x, y, LO, HI);
}

void gelu_bwd_f32(const float *g, const float *x, float *dx, int64_t n, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (n > BLOCK)
    for (int64_t blk = 0; blk < NBLOCKS(n); ++blk) bwd_f32(g, x, dx, LO, HI);
}

void gelu_fwd_bf16(const uint16_t *x, uint16_t *y, int64_t n, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (n > BLOCK)
    for (int64_t blk = 0; blk < NBLOCKS(n); ++blk) fwd_bf16(x, y, LO, HI);
}

void gelu_bwd_bf16(const uint16_t *g, const uint16_t *x, uint16_t *dx, int64_t n, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (n > BLOCK)
    for (int64_t blk = 0; blk < NBLOCKS(n); ++blk) bwd_bf16(g, x, dx, LO, HI);
}

void gelu_fwd_f64(const double *x, double *y, int64_t n, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (n > BLOCK)
    for (int64_t blk = 0; blk < NBLOCKS(n); ++blk) fwd_f64(x, y, LO, HI);
}

void gelu_bwd_f64(const double *g, const double *x, double *dx, int64_t n, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads) if (n > BLOCK)
    for (int64_t blk = 0; blk < NBLOCKS(n); ++blk) bwd_f64(g, x, dx, LO, HI);
}
