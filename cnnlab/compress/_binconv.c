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
                dot_filters(patch, seg, nseg, w, L, Cout, taps * C,
                            out + ((n * Ho + oh) * Wo + ow) * Cout);
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
    {"openmp", py_openmp, METH_NOARGS, "whether the kernel was built with OpenMP"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_binconv",
                                    "Bit-packed XNOR + popcount convolution.", -1, methods};

PyMODINIT_FUNC PyInit__binconv(void) { return PyModule_Create(&module); }
