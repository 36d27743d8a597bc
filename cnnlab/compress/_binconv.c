/* Bit-packed XNOR + popcount convolution (Rastegari et al. 2016, XNOR-Net, Sec. 3.2).
 *
 * Signs are packed 64 to a uint64 word along the channels: a pixel of C channels is
 * ceil(C/64) words, bit set = +1, the bits past C are 0 in inputs and weights alike, so they
 * never differ. For ±1 vectors a, b of length n, a·b = n − 2·popcount(a XOR b).
 *
 * Zero padding: the paper pads with zeros, which are not ±1. A tap that falls outside the
 * image contributes 0, exactly as zero padding does in the float convolution: the kernel
 * skips it, and n counts only the channels of the taps inside the image (a mask count). So
 * the result is the integer sign(I) ⊛ sign(W) of the zero-padded float convolution, exactly.
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


#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define HAVE_AVX2_PATH 1

/* AVX2 popcount by nibble lookup (Mula, Kurz & Lemire 2018): bytes' counts are summed in
 * 8-bit lanes for up to 31 vectors (each adds at most 8), then widened by vpsadbw. */
__attribute__((target("avx2"))) static inline __m256i popc8(__m256i v) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    __m256i lo = _mm256_and_si256(v, low);
    __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

__attribute__((target("avx2"))) static inline long hsum(__m256i b, __m256i acc) {
    acc = _mm256_add_epi64(acc, _mm256_sad_epu8(b, _mm256_setzero_si256()));
    return _mm256_extract_epi64(acc, 0) + _mm256_extract_epi64(acc, 1) +
           _mm256_extract_epi64(acc, 2) + _mm256_extract_epi64(acc, 3);
}

#define LOADU(p) _mm256_loadu_si256((const __m256i *)(p))
#define FLUSH(b, a) (a = _mm256_add_epi64(a, _mm256_sad_epu8(b, zero)), b = zero)

__attribute__((target("avx2"))) static void dot_filters_avx2(
    const uint64_t *patch, const long *seg, int nseg, const uint64_t *wb, long L, long Cout,
    long nvalid, int32_t *out) {
    const __m256i zero = _mm256_setzero_si256();
    for (long o = 0; o < Cout; o += 4) {
        int nf = Cout - o < 4 ? (int)(Cout - o) : 4;
        const uint64_t *w[4];
        for (int f = 0; f < 4; f++) w[f] = wb + (o + (f < nf ? f : 0)) * L;
        __m256i b0 = zero, b1 = zero, b2 = zero, b3 = zero;
        __m256i a0 = zero, a1 = zero, a2 = zero, a3 = zero;
        long tail[4] = {0, 0, 0, 0};
        int k = 0;
        for (int s = 0; s < nseg; s++) {
            long i = seg[2 * s], end = seg[2 * s + 1];
            for (; i + 4 <= end; i += 4) {
                __m256i p = LOADU(patch + i);
                b0 = _mm256_add_epi8(b0, popc8(_mm256_xor_si256(p, LOADU(w[0] + i))));
                b1 = _mm256_add_epi8(b1, popc8(_mm256_xor_si256(p, LOADU(w[1] + i))));
                b2 = _mm256_add_epi8(b2, popc8(_mm256_xor_si256(p, LOADU(w[2] + i))));
                b3 = _mm256_add_epi8(b3, popc8(_mm256_xor_si256(p, LOADU(w[3] + i))));
                if (++k == 31) {
                    FLUSH(b0, a0); FLUSH(b1, a1); FLUSH(b2, a2); FLUSH(b3, a3);
                    k = 0;
                }
            }
            for (; i < end; i++)
                for (int f = 0; f < 4; f++) tail[f] += popc(patch[i] ^ w[f][i]);
        }
        long c[4] = {hsum(b0, a0), hsum(b1, a1), hsum(b2, a2), hsum(b3, a3)};
        for (int f = 0; f < nf; f++) out[o + f] = (int32_t)(nvalid - 2 * (c[f] + tail[f]));
    }
}
#endif

/* mismatches of a patch segment list against 4 filters at once (the patch words are loaded
 * once for the 4), then one at a time for the rest */
static void dot_filters(const uint64_t *patch, const long *seg, int nseg, const uint64_t *wb,
                        long L, long Cout, long nvalid, int32_t *out) {
    long o = 0;
    for (; o + 4 <= Cout; o += 4) {
        const uint64_t *w0 = wb + o * L, *w1 = w0 + L, *w2 = w1 + L, *w3 = w2 + L;
        int c0 = 0, c1 = 0, c2 = 0, c3 = 0;
        for (int s = 0; s < nseg; s++) {
            for (long i = seg[2 * s]; i < seg[2 * s + 1]; i++) {
                uint64_t p = patch[i];
                c0 += popc(p ^ w0[i]);
                c1 += popc(p ^ w1[i]);
                c2 += popc(p ^ w2[i]);
                c3 += popc(p ^ w3[i]);
            }
        }
        out[o] = (int32_t)(nvalid - 2 * c0);
        out[o + 1] = (int32_t)(nvalid - 2 * c1);
        out[o + 2] = (int32_t)(nvalid - 2 * c2);
        out[o + 3] = (int32_t)(nvalid - 2 * c3);
    }
    for (; o < Cout; o++) {
        const uint64_t *w0 = wb + o * L;
        int c0 = 0;
        for (int s = 0; s < nseg; s++)
            for (long i = seg[2 * s]; i < seg[2 * s + 1]; i++) c0 += popc(patch[i] ^ w0[i]);
        out[o] = (int32_t)(nvalid - 2 * c0);
    }
}

/* x: (N, H, W, words) bits; w: (Cout, KH, KW, words) bits; out: (N, Ho, Wo, Cout) int32 */
static void binconv(const uint64_t *x, const uint64_t *w, int32_t *out, long N, long H,
                    long W, long C, long words, long Cout, long KH, long KW, long sh, long sw,
                    long ph, long pw, long dh, long dw, long Ho, long Wo, int threads) {
    long L = KH * KW * words;
    long rows = N * Ho;
#ifdef HAVE_AVX2_PATH
    int use_avx2 = __builtin_cpu_supports("avx2") && getenv("CNNLAB_NO_AVX2") == NULL;
#endif
    long r;
#pragma omp parallel num_threads(threads)
    {
        /* the patch holds every tap's words at its offset in the filter layout (taps outside
         * the image are left out of the segment list) */
        uint64_t *patch = (uint64_t *)calloc((size_t)L, sizeof(uint64_t));
        long *seg = (long *)malloc(sizeof(long) * 2 * (size_t)(KH * KW));
#pragma omp for schedule(static)
        for (r = 0; r < rows; r++) {
            long n = r / Ho, oh = r % Ho;
            for (long ow = 0; ow < Wo; ow++) {
                int nseg = 0;
                long taps = 0;
                for (long kh = 0; kh < KH; kh++) {
                    long ih = oh * sh - ph + kh * dh;
                    if (ih < 0 || ih >= H) continue;
                    for (long kw = 0; kw < KW; kw++) {
                        long iw = ow * sw - pw + kw * dw;
                        if (iw < 0 || iw >= W) continue;
                        long off = (kh * KW + kw) * words;
                        memcpy(patch + off, x + ((n * H + ih) * W + iw) * words,
                               sizeof(uint64_t) * (size_t)words);
                        if (nseg && seg[2 * nseg - 1] == off) seg[2 * nseg - 1] = off + words;
                        else { seg[2 * nseg] = off; seg[2 * nseg + 1] = off + words; nseg++; }
                        taps++;
                    }
                }
                int32_t *o = out + ((n * Ho + oh) * Wo + ow) * Cout;
#ifdef HAVE_AVX2_PATH
                if (use_avx2) dot_filters_avx2(patch, seg, nseg, w, L, Cout, taps * C, o);
                else
#endif
                dot_filters(patch, seg, nseg, w, L, Cout, taps * C, o);
            }
        }
        free(patch);
        free(seg);
    }
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
    unsigned long long px, pw_, po;
    long N, H, W, C, words, Cout, KH, KW, sh, sw, ph, pw, dh, dw, Ho, Wo;
    int threads;
    if (!PyArg_ParseTuple(args, "KKKlllllllllllllllli", &px, &pw_, &po, &N, &H, &W, &C,
                          &words, &Cout, &KH, &KW, &sh, &sw, &ph, &pw, &dh, &dw, &Ho, &Wo,
                          &threads))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    binconv((const uint64_t *)(uintptr_t)px, (const uint64_t *)(uintptr_t)pw_,
            (int32_t *)(uintptr_t)po, N, H, W, C, words, Cout, KH, KW, sh, sw, ph, pw, dh, dw,
            Ho, Wo, threads);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_simd(PyObject *self, PyObject *args) {
#ifdef HAVE_AVX2_PATH
    if (__builtin_cpu_supports("avx2")) return PyUnicode_FromString("avx2");
#endif
    return PyUnicode_FromString("scalar");
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
    {"conv", py_conv, METH_VARARGS, "conv(x_ptr, w_ptr, out_ptr, N, H, W, C, words, Cout, "
                                    "KH, KW, sh, sw, ph, pw, dh, dw, Ho, Wo, threads)"},
    {"simd", py_simd, METH_NOARGS, "the popcount path the CPU gets: avx2 or scalar"},
    {"openmp", py_openmp, METH_NOARGS, "whether the kernel was built with OpenMP"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_binconv",
                                    "Bit-packed XNOR + popcount convolution.", -1, methods};

PyMODINIT_FUNC PyInit__binconv(void) { return PyModule_Create(&module); }
