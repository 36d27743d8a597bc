/* Bit-packed XNOR + popcount convolution (Rastegari et al. 2016, XNOR-Net, Sec. 3.2).
 *
 * Signs are packed 64 to a uint64 word along the channels: a pixel of C channels is
 * ceil(C/64) words, bit set = +1 (x >= 0, so sign(0) = +1), the bits past C are 0 in inputs and
 * weights alike, so they never differ. For ±1 vectors a, b of length n,
 * a·b = n − 2·popcount(a XOR b).
 *
 * Zero padding: the paper pads with zeros, which are not ±1. A tap that falls outside the
 * image must contribute 0, exactly as zero padding does in the float convolution, so n counts
 * only the channels of the taps inside the image. The kernel runs every pixel through the same
 * loop over the whole patch (KH·KW·words words, the filter's layout): an outside tap's words
 * are 0 there, which adds popcount(0 XOR w_tap) = popcount(w_tap) mismatches, and those are
 * subtracted again from a per-filter, per-tap table of popcount(w_tap). So the result is the
 * integer sign(I) ⊛ sign(W) of the zero-padded float convolution, exactly.
 *
 * Speed (benchmarks/binary_conv.py): the input is read once in its NCHW float layout and
 * packed here (compare + movemask, 8 pixels at a time), so no transposed copy is made; the
 * weights are packed once by the caller. Each thread takes whole output rows: it gathers the
 * row's patches, then runs them against blocks of filters small enough to stay in L1 (the
 * weights are reused across the row, not streamed from L2 for every pixel), 4 filters at a
 * time (a patch word is loaded once for the 4). Popcount: AVX-512 VPOPCNTDQ (one instruction
 * per 8 words) or AVX2 (nibble lookup, Mula, Kurz & Lemire 2018), chosen at run time from what
 * the CPU reports; scalar __builtin_popcountll otherwise. CNNLAB_BINCONV_SIMD=scalar|avx2|
 * avx512 forces a path (one the CPU lacks falls back to the best it has), for tests.
 *
 * The module has no Python objects in the hot path: the wrappers take tensor addresses and
 * shapes (checked on the Python side, cnnlab/compress/binary_kernel.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

enum { SIMD_SCALAR = 0, SIMD_AVX2 = 1, SIMD_AVX512 = 2 };
static const char *SIMD_NAMES[] = {"scalar", "avx2", "avx512"};

static inline int popc(uint64_t v) { return __builtin_popcountll(v); }

/* float rows (rows × C) → sign bits (rows × words), bit c%64 of word c/64 set when x ≥ 0 */
static void pack_rows(const float *x, uint64_t *out, long rows, long C, long words,
                      int threads) {
    long r;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (r = 0; r < rows; r++) {
        const float *xr = x + r * C;
        uint64_t *o = out + r * words;
        for (long w = 0; w < words; w++) {
            uint64_t v = 0;
            long c0 = w * 64, c1 = c0 + 64 < C ? c0 + 64 : C;
            for (long c = c0; c < c1; c++)
                v |= (uint64_t)(xr[c] >= 0.0f) << (c - c0);
            o[w] = v;
        }
    }
}

/* one image's planes (C × HW floats, NCHW) → bits (HW × words), pixels p0..p1 */
static void pack_planes_scalar(const float *x, uint64_t *out, long C, long HW, long words,
                               long p0, long p1) {
    for (long p = p0; p < p1; p++) {
        uint64_t *o = out + p * words;
        for (long w = 0; w < words; w++) {
            uint64_t v = 0;
            long c0 = w * 64, c1 = c0 + 64 < C ? c0 + 64 : C;
            for (long c = c0; c < c1; c++) v |= (uint64_t)(x[c * HW + p] >= 0.0f) << (c - c0);
            o[w] = v;
        }
    }
}

/* mismatches of one patch (L words) against 4 filters (rows w, w+L, w+2L, w+3L) */
static inline void dot4_scalar(const uint64_t *p, const uint64_t *w, long L, long *res) {
    const uint64_t *w1 = w + L, *w2 = w1 + L, *w3 = w2 + L;
    long c0 = 0, c1 = 0, c2 = 0, c3 = 0;
    for (long i = 0; i < L; i++) {
        uint64_t v = p[i];
        c0 += popc(v ^ w[i]);
        c1 += popc(v ^ w1[i]);
        c2 += popc(v ^ w2[i]);
        c3 += popc(v ^ w3[i]);
    }
    res[0] = c0; res[1] = c1; res[2] = c2; res[3] = c3;
}

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define HAVE_X86_PATHS 1

/* 8 pixels × 64 channels per step: compare 8 floats of a channel plane with 0, OR the mask
 * bit c into 32-bit lanes (channels 0-31 and 32-63 apart), then interleave into 8 words */
__attribute__((target("avx2"))) static void pack_planes_avx2(
    const float *x, uint64_t *out, long C, long HW, long words, long p0, long p1) {
    const __m256 zero = _mm256_setzero_ps();
    long p = p0;
    for (; p + 8 <= p1; p += 8) {
        for (long w = 0; w < words; w++) {
            __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
            long c0 = w * 64, n = C - c0 < 64 ? C - c0 : 64;
            for (long c = 0; c < n; c++) {
                __m256i m = _mm256_castps_si256(
                    _mm256_cmp_ps(_mm256_loadu_ps(x + (c0 + c) * HW + p), zero, _CMP_GE_OQ));
                __m256i bit = _mm256_set1_epi32((int)(1u << (c & 31)));
                if (c < 32) lo = _mm256_or_si256(lo, _mm256_and_si256(m, bit));
                else hi = _mm256_or_si256(hi, _mm256_and_si256(m, bit));
            }
            __m256i a = _mm256_unpacklo_epi32(lo, hi), b = _mm256_unpackhi_epi32(lo, hi);
            uint64_t v[8];
            _mm256_storeu_si256((__m256i *)v, _mm256_permute2x128_si256(a, b, 0x20));
            _mm256_storeu_si256((__m256i *)(v + 4), _mm256_permute2x128_si256(a, b, 0x31));
            for (int k = 0; k < 8; k++) out[(p + k) * words + w] = v[k];
        }
    }
    pack_planes_scalar(x, out, C, HW, words, p, p1);
}

__attribute__((target("avx2"))) static inline __m256i popc8(__m256i v, __m256i lut,
                                                           __m256i low) {
    __m256i lo = _mm256_and_si256(v, low);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

#define LOADU(q) _mm256_loadu_si256((const __m256i *)(q))

/* byte counters take ≤ 31 vectors (each adds ≤ 8 per byte), then vpsadbw widens them */
__attribute__((target("avx2"))) static inline void dot4_avx2(const uint64_t *p, const uint64_t *w,
                                                      long L, long *res) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
    const uint64_t *w1 = w + L, *w2 = w1 + L, *w3 = w2 + L;
    __m256i a0 = zero, a1 = zero, a2 = zero, a3 = zero;
    long i = 0, L4 = L & ~3L;
    while (i < L4) {
        long end = i + 4 * 31 < L4 ? i + 4 * 31 : L4;
        __m256i b0 = zero, b1 = zero, b2 = zero, b3 = zero;
        for (; i < end; i += 4) {
            __m256i v = LOADU(p + i);
            b0 = _mm256_add_epi8(b0, popc8(_mm256_xor_si256(v, LOADU(w + i)), lut, low));
            b1 = _mm256_add_epi8(b1, popc8(_mm256_xor_si256(v, LOADU(w1 + i)), lut, low));
            b2 = _mm256_add_epi8(b2, popc8(_mm256_xor_si256(v, LOADU(w2 + i)), lut, low));
            b3 = _mm256_add_epi8(b3, popc8(_mm256_xor_si256(v, LOADU(w3 + i)), lut, low));
        }
        a0 = _mm256_add_epi64(a0, _mm256_sad_epu8(b0, zero));
        a1 = _mm256_add_epi64(a1, _mm256_sad_epu8(b1, zero));
        a2 = _mm256_add_epi64(a2, _mm256_sad_epu8(b2, zero));
        a3 = _mm256_add_epi64(a3, _mm256_sad_epu8(b3, zero));
    }
    /* 4 × 4 partial sums → [a0, a1, a2, a3] */
    __m256i t0 = _mm256_add_epi64(_mm256_unpacklo_epi64(a0, a1), _mm256_unpackhi_epi64(a0, a1));
    __m256i t1 = _mm256_add_epi64(_mm256_unpacklo_epi64(a2, a3), _mm256_unpackhi_epi64(a2, a3));
    __m256i s = _mm256_add_epi64(_mm256_permute2x128_si256(t0, t1, 0x20),
                                 _mm256_permute2x128_si256(t0, t1, 0x31));
    long long c[4];
    _mm256_storeu_si256((__m256i *)c, s);
    for (; i < L; i++) {  /* the last L % 4 words */
        uint64_t v = p[i];
        c[0] += popc(v ^ w[i]); c[1] += popc(v ^ w1[i]);
        c[2] += popc(v ^ w2[i]); c[3] += popc(v ^ w3[i]);
    }
    res[0] = c[0]; res[1] = c[1]; res[2] = c[2]; res[3] = c[3];
}

/* VPOPCNTDQ counts 8 words in one instruction; the last L % 8 words by a masked load */
__attribute__((target("avx512f,avx512vpopcntdq"))) static inline void dot4_avx512(
    const uint64_t *p, const uint64_t *w, long L, long *res) {
    const uint64_t *w1 = w + L, *w2 = w1 + L, *w3 = w2 + L;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    long i = 0;
    for (; i + 8 <= L; i += 8) {
        __m512i v = _mm512_loadu_si512(p + i);
        a0 = _mm512_add_epi64(a0, _mm512_popcnt_epi64(_mm512_xor_si512(v, _mm512_loadu_si512(w + i))));
        a1 = _mm512_add_epi64(a1, _mm512_popcnt_epi64(_mm512_xor_si512(v, _mm512_loadu_si512(w1 + i))));
        a2 = _mm512_add_epi64(a2, _mm512_popcnt_epi64(_mm512_xor_si512(v, _mm512_loadu_si512(w2 + i))));
        a3 = _mm512_add_epi64(a3, _mm512_popcnt_epi64(_mm512_xor_si512(v, _mm512_loadu_si512(w3 + i))));
    }
    if (i < L) {
        __mmask8 m = (__mmask8)((1u << (L - i)) - 1);
        __m512i v = _mm512_maskz_loadu_epi64(m, p + i);
        a0 = _mm512_add_epi64(a0, _mm512_popcnt_epi64(_mm512_xor_si512(v, _mm512_maskz_loadu_epi64(m, w + i))));
        a1 = _mm512_add_epi64(a1, _mm512_popcnt_epi64(_mm512_xor_si512(v, _mm512_maskz_loadu_epi64(m, w1 + i))));
        a2 = _mm512_add_epi64(a2, _mm512_popcnt_epi64(_mm512_xor_si512(v, _mm512_maskz_loadu_epi64(m, w2 + i))));
        a3 = _mm512_add_epi64(a3, _mm512_popcnt_epi64(_mm512_xor_si512(v, _mm512_maskz_loadu_epi64(m, w3 + i))));
    }
    res[0] = _mm512_reduce_add_epi64(a0); res[1] = _mm512_reduce_add_epi64(a1);
    res[2] = _mm512_reduce_add_epi64(a2); res[3] = _mm512_reduce_add_epi64(a3);
}
#endif

/* one output row's pixels (patches Wo × L) against filters f0..f1: counts = n − 2·mismatches,
 * the mismatches of outside taps (zero words against w_tap) taken off again. With scales
 * (sc->alpha) the row is written as float count·α_f·K_pixel (+ bias_f), in that order, the
 * order of the float simulation (BinaryConv2d.forward); else as int32 counts. */
typedef struct { const float *alpha, *k, *bias; } scales;

#define DEFINE_BLOCK(NAME, DOT, ATTR)                                                         \
    ATTR static void NAME(const uint64_t *patch, const uint64_t *wp, long L, long T, long f0, \
                          long f1, long Wo, const long *nvalid, const long *nmiss,             \
                          const long *miss, const int32_t *wpop, int32_t *orow, long Cout,     \
                          const scales *sc, const float *krow) {                               \
        for (long ow = 0; ow < Wo; ow++) {                                                    \
            int32_t *o = orow + ow * Cout;                                                    \
            float *of = (float *)o;                                                           \
            const uint64_t *p = patch + ow * L;                                               \
            long nv = nvalid[ow], nm = nmiss[ow];                                             \
            for (long f = f0; f < f1; f += 4) {                                               \
                long c[4];                                                                    \
                DOT(p, wp + f * L, L, c);                                                     \
                for (long k = 0; k < 4 && f + k < f1; k++) {                                  \
                    long mism = c[k];                                                         \
                    for (long j = 0; j < nm; j++) mism -= wpop[(f + k) * T + miss[ow * T + j]]; \
                    long cnt = nv - 2 * mism;                                                 \
                    if (sc->alpha) {                                                          \
                        float v = (float)cnt * sc->alpha[f + k];                              \
                        v = v * krow[ow];                                                     \
                        of[f + k] = sc->bias ? v + sc->bias[f + k] : v;                       \
                    } else                                                                    \
                        o[f + k] = (int32_t)cnt;                                              \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
    }

DEFINE_BLOCK(block_scalar, dot4_scalar, )
#ifdef HAVE_X86_PATHS
DEFINE_BLOCK(block_avx2, dot4_avx2, __attribute__((target("avx2"))))
DEFINE_BLOCK(block_avx512, dot4_avx512, __attribute__((target("avx512f,avx512vpopcntdq"))))
#endif

static int simd_supported(int path) {
    if (path == SIMD_SCALAR) return 1;
#ifdef HAVE_X86_PATHS
    __builtin_cpu_init();
    if (path == SIMD_AVX2) return __builtin_cpu_supports("avx2");
    if (path == SIMD_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
#endif
    return 0;
}

/* the path a call takes: the best the CPU has, or CNNLAB_BINCONV_SIMD's if the CPU has it */
static int simd_path(void) {
    const char *env = getenv("CNNLAB_BINCONV_SIMD");
    if (env)
        for (int k = 0; k < 3; k++)
            if (!strcmp(env, SIMD_NAMES[k]) && simd_supported(k)) return k;
    for (int k = 2; k > 0; k--)
        if (simd_supported(k)) return k;
    return SIMD_SCALAR;
}

typedef void (*block_fn)(const uint64_t *, const uint64_t *, long, long, long, long, long,
                         const long *, const long *, const long *, const int32_t *, int32_t *,
                         long, const scales *, const float *);

/* x: (N, C, H, W) float; w: (Cout, KH, KW, words) bits; out: (N, Ho, Wo, Cout) int32.
 * Returns 0, or -1 when memory runs out. */
static int binconv(const float *x, const uint64_t *w, int32_t *out, const scales *sc,
                   long N, long C, long H,
                   long W, long words, long Cout, long KH, long KW, long sh, long sw, long ph,
                   long pw, long dh, long dw, long Ho, long Wo, int threads) {
    const long T = KH * KW, L = T * words, HW = H * W;
    const int path = simd_path();
    block_fn block = block_scalar;
#ifdef HAVE_X86_PATHS
    if (path == SIMD_AVX512) block = block_avx512;
    else if (path == SIMD_AVX2) block = block_avx2;
#endif
    /* the 4-filter loop reads whole groups of 4: a copy with zero rows when Cout % 4 != 0 */
    const long Cout4 = (Cout + 3) & ~3L;
    uint64_t *xb = (uint64_t *)malloc(sizeof(uint64_t) * (size_t)(N * HW * words + 1));
    uint64_t *wcopy = Cout4 == Cout ? NULL
                                    : (uint64_t *)calloc((size_t)(Cout4 * L), sizeof(uint64_t));
    const uint64_t *wp = wcopy ? wcopy : w;
    int32_t *wpop = (int32_t *)malloc(sizeof(int32_t) * (size_t)(Cout * T + 1));
    int failed = !xb || !wpop || (Cout4 != Cout && !wcopy);
    if (!failed) {
        if (wcopy) memcpy(wcopy, w, sizeof(uint64_t) * (size_t)(Cout * L));
        for (long f = 0; f < Cout; f++)
            for (long t = 0; t < T; t++) {
                int s = 0;
                for (long k = 0; k < words; k++) s += popc(w[(f * T + t) * words + k]);
                wpop[f * T + t] = s;
            }
        /* pack: chunks of pixels per thread */
        long chunks = N * ((HW + 255) / 256), q;
#pragma omp parallel for num_threads(threads) schedule(static)
        for (q = 0; q < chunks; q++) {
            long n = q / ((HW + 255) / 256), p0 = (q % ((HW + 255) / 256)) * 256;
            long p1 = p0 + 256 < HW ? p0 + 256 : HW;
            const float *xn = x + n * C * HW;
            uint64_t *on = xb + n * HW * words;
#ifdef HAVE_X86_PATHS
            if (path != SIMD_SCALAR) pack_planes_avx2(xn, on, C, HW, words, p0, p1);
            else
#endif
            pack_planes_scalar(xn, on, C, HW, words, p0, p1);
        }
    }
    /* filter blocks whose weights (FB × L words) take ~16 KiB, half of a usual L1 */
    long FB = (2048 / (L > 0 ? L : 1)) & ~3L;
    if (FB < 4) FB = 4;
    long rows = N * Ho, r;
#pragma omp parallel num_threads(threads) if (!failed)
    {
        uint64_t *patch = (uint64_t *)malloc(sizeof(uint64_t) * (size_t)(Wo * L + 1));
        long *nvalid = (long *)malloc(sizeof(long) * (size_t)(Wo + 1));
        long *miss = (long *)malloc(sizeof(long) * (size_t)(Wo * T + 1)); /* outside taps */
        long *nmiss = (long *)malloc(sizeof(long) * (size_t)(Wo + 1));
        int ok = patch && nvalid && miss && nmiss && !failed;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (r = 0; r < rows; r++) {
            if (!ok) continue;
            long n = r / Ho, oh = r % Ho;
            /* the row's patches, outside taps as zero words */
            for (long ow = 0; ow < Wo; ow++) {
                uint64_t *pt = patch + ow * L;
                long taps = 0, m = 0;
                for (long kh = 0; kh < KH; kh++) {
                    long ih = oh * sh - ph + kh * dh;
                    for (long kw = 0; kw < KW; kw++) {
                        long iw = ow * sw - pw + kw * dw, t = kh * KW + kw;
                        if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
                            memset(pt + t * words, 0, sizeof(uint64_t) * (size_t)words);
                            miss[ow * T + m++] = t;
                        } else {
                            memcpy(pt + t * words, xb + ((n * H + ih) * W + iw) * words,
                                   sizeof(uint64_t) * (size_t)words);
                            taps++;
                        }
                    }
                }
                nvalid[ow] = taps * C;
                nmiss[ow] = m;
            }
            for (long f0 = 0; f0 < Cout; f0 += FB)
                block(patch, wp, L, T, f0, f0 + FB < Cout ? f0 + FB : Cout, Wo, nvalid, nmiss,
                      miss, wpop, out + (n * Ho + oh) * Wo * Cout, Cout, sc,
                      sc->k ? sc->k + (n * Ho + oh) * Wo : NULL);
        }
        free(patch);
        free(nvalid);
        free(miss);
        free(nmiss);
    }
    free(xb);
    free(wcopy);
    free(wpop);
    return failed ? -1 : 0;
}

static PyObject *py_pack(PyObject *self, PyObject *args) {
    unsigned long long px, po;
    long rows, C, words;
    int threads;
    if (!PyArg_ParseTuple(args, "KKllli", &px, &po, &rows, &C, &words, &threads)) return NULL;
    Py_BEGIN_ALLOW_THREADS
    pack_rows((const float *)(uintptr_t)px, (uint64_t *)(uintptr_t)po, rows, C, words,
              threads);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_conv(PyObject *self, PyObject *args) {
    unsigned long long px, pw_, po, pa = 0, pk = 0, pb = 0;
    long N, C, H, W, words, Cout, KH, KW, sh, sw, ph, pw, dh, dw, Ho, Wo;
    int threads, rc;
    if (!PyArg_ParseTuple(args, "KKKlllllllllllllllli|KKK", &px, &pw_, &po, &N, &C, &H, &W,
                          &words, &Cout, &KH, &KW, &sh, &sw, &ph, &pw, &dh, &dw, &Ho, &Wo,
                          &threads, &pa, &pk, &pb))
        return NULL;
    if ((pa == 0) != (pk == 0)) {
        PyErr_SetString(PyExc_ValueError, "alpha and K come together");
        return NULL;
    }
    scales sc = {(const float *)(uintptr_t)pa, (const float *)(uintptr_t)pk,
                 (const float *)(uintptr_t)pb};
    Py_BEGIN_ALLOW_THREADS
    rc = binconv((const float *)(uintptr_t)px, (const uint64_t *)(uintptr_t)pw_,
                 (int32_t *)(uintptr_t)po, &sc, N, C, H, W, words, Cout, KH, KW, sh, sw, ph, pw, dh,
                 dw, Ho, Wo, threads);
    Py_END_ALLOW_THREADS
    if (rc) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *py_simd(PyObject *self, PyObject *args) {
    return PyUnicode_FromString(SIMD_NAMES[simd_path()]);
}

static PyObject *py_simd_paths(PyObject *self, PyObject *args) {
    PyObject *list = PyList_New(0);
    for (int k = 0; list && k < 3; k++)
        if (simd_supported(k)) {
            PyObject *s = PyUnicode_FromString(SIMD_NAMES[k]);
            if (!s || PyList_Append(list, s)) {
                Py_XDECREF(s);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(s);
        }
    return list;
}

static PyObject *py_openmp(PyObject *self, PyObject *args) {
#ifdef _OPENMP
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}

static PyMethodDef methods[] = {
    {"pack", py_pack, METH_VARARGS, "pack(x_ptr, out_ptr, rows, C, words, threads)"},
    {"conv", py_conv, METH_VARARGS, "conv(x_ptr (NCHW float), w_ptr, out_ptr, N, C, H, W, "
                                    "words, Cout, KH, KW, sh, sw, ph, pw, dh, dw, Ho, Wo, "
                                    "threads[, alpha_ptr, k_ptr, bias_ptr]): int32 counts, "
                                    "or float counts·α·K (+ bias) with the scales"},
    {"simd", py_simd, METH_NOARGS, "the popcount path a call takes now: avx512, avx2 or scalar"},
    {"simd_paths", py_simd_paths, METH_NOARGS, "the popcount paths this CPU supports"},
    {"openmp", py_openmp, METH_NOARGS, "whether the kernel was built with OpenMP"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_binconv",
                                    "Bit-packed XNOR + popcount convolution.", -1, methods};

PyMODINIT_FUNC PyInit__binconv(void) { return PyModule_Create(&module); }
