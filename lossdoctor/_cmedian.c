/* lossdoctor._cmedian: sliding-window medians, compiled (optional; lossdoctor/rules/rolling.py is the
   reference and the fallback).

   Both functions give, for every window of `width` consecutive points of the series padded with `pad_before`
   / `pad_after` empty slots (window i covers padded positions i .. i + width - 1), the median of the window's
   finite values: the middle one (itself, so a value near the largest double stays finite), or the mean of
   the two middle ones for an even count; NaN for a window with none. Values that compare equal are ordered by
   position (a stable sort of the window), so -0.0 and 0.0 come out as sorting each window would give them.

   - small(values, width, pad_before, pad_after): the window kept as a sorted array (binary search, memmove);
     for short windows.
   - large(values, width, pad_before, pad_after): the finite points ranked by a stable radix sort (each point
     its own rank, equal values in position order), the window kept as a bitset over the ranks, and each
     window's middle found by walking from the last window's (one point in and one out move it a few set
     bits, skipped 64 ranks at a time); for long windows, whatever the number of distinct values.

   Each returns a bytearray of float64, one per window. Inputs are read through the buffer protocol (float64,
   C-contiguous). Nothing is allocated per point. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static int get_buffer(PyObject *obj, Py_buffer *view, const char *fmt, Py_ssize_t itemsize, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->itemsize != itemsize || view->format == NULL || strcmp(view->format, fmt) != 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a contiguous buffer of format '%s'", what, fmt);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* windows and output size; -1 on bad arguments */
static Py_ssize_t windows(Py_ssize_t n, Py_ssize_t width, Py_ssize_t before, Py_ssize_t after) {
    if (width < 1 || before < 0 || after < 0) {
        PyErr_SetString(PyExc_ValueError, "width must be >= 1 and pads >= 0");
        return -1;
    }
    /* n + before + after - width + 1, without overflow, and few enough windows to allocate their doubles */
    const Py_ssize_t most = PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(double);
    if (before > most - n || after > most - n - before) {
        PyErr_SetString(PyExc_OverflowError, "too many windows");
        return -1;
    }
    Py_ssize_t q = n + before + after - width + 1;
    return q > 0 ? q : 0;
}

/* The original indices of the points in the first window but its last: [from, to) within [0, n). */
static void first_window(Py_ssize_t n, Py_ssize_t width, Py_ssize_t before, Py_ssize_t *from, Py_ssize_t *to) {
    *from = 0; /* the window starts at -before <= 0 */
    Py_ssize_t end = width - 1 - before; /* width >= 1, before >= 0: no overflow */
    *to = end < 0 ? 0 : (end > n ? n : end);
}

/* first position in a[0:m] whose value is > x (after every equal one) */
static Py_ssize_t upper(const double *a, Py_ssize_t m, double x) {
    Py_ssize_t lo = 0, hi = m;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) >> 1;
        if (a[mid] <= x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* first position in a[0:m] whose value is >= x (before every equal one) */
static Py_ssize_t lower(const double *a, Py_ssize_t m, double x) {
    Py_ssize_t lo = 0, hi = m;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) >> 1;
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The arguments both functions take, (values, width, pad_before, pad_after) as ``format`` reads them: the
   values' buffer in *view (to release), the width and the front pad, and the number of windows; -1 with an
   exception set (and nothing to release). */
static Py_ssize_t series_args(PyObject *args, const char *format, const char *name, Py_buffer *view,
                              Py_ssize_t *width, Py_ssize_t *before) {
    PyObject *obj;
    Py_ssize_t after;
    if (!PyArg_ParseTuple(args, format, &obj, width, before, &after)) return -1;
    if (get_buffer(obj, view, "d", sizeof(double), name) < 0) return -1;
    Py_ssize_t q = windows(view->len / (Py_ssize_t)sizeof(double), *width, *before, after);
    if (q < 0) PyBuffer_Release(view);
    return q;
}

/* A point into / out of the sorted window a[0:*m]: in after the values equal to it, out as the first of them
   (the oldest: equal values are kept in position order). */
static inline void sorted_add(double *a, Py_ssize_t *m, double x) {
    Py_ssize_t at = upper(a, *m, x);
    memmove(a + at + 1, a + at, (size_t)(*m - at) * sizeof(double));
    a[at] = x;
    (*m)++;
}

static inline void sorted_drop(double *a, Py_ssize_t *m, double x) {
    Py_ssize_t at = lower(a, *m, x);
    memmove(a + at, a + at + 1, (size_t)(*m - at - 1) * sizeof(double));
    (*m)--;
}

static PyObject *cmedian_small(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    Py_ssize_t width, before;
    Py_ssize_t q = series_args(args, "Onnn:small", "small", &view, &width, &before);
    if (q < 0) return NULL;
    const double *v = view.buf;
    Py_ssize_t n = view.len / (Py_ssize_t)sizeof(double);
    PyObject *out = NULL;
    double *sorted = NULL;
    out = PyByteArray_FromStringAndSize(NULL, q * (Py_ssize_t)sizeof(double));
    /* a window holds at most min(width, n) points, one more while a point comes in before one goes */
    sorted = PyMem_Malloc((size_t)((width < n ? width : n) + 1) * sizeof(double));
    if (out == NULL || sorted == NULL) {
        if (!PyErr_Occurred()) PyErr_NoMemory(); /* (PyMem_Malloc sets no error) */
        Py_CLEAR(out);
        goto done;
    }
    double *res = (double *)PyByteArray_AS_STRING(out);
    Py_ssize_t m = 0;
    /* the window of output i is original indices [i - before, i - before + width) */
    Py_ssize_t from, to;
    first_window(n, width, before, &from, &to);
    for (Py_ssize_t j = from; j < to; j++)
        if (isfinite(v[j])) sorted_add(sorted, &m, v[j]);
    for (Py_ssize_t i = 0; i < q; i++) {
        Py_ssize_t in = i - before + width - 1, gone = i - before - 1;
        if (in >= 0 && in < n && isfinite(v[in])) sorted_add(sorted, &m, v[in]);
        if (gone >= 0 && gone < n && isfinite(v[gone])) sorted_drop(sorted, &m, v[gone]);
        res[i] = !m ? Py_NAN : m % 2 ? sorted[m / 2] : (sorted[m / 2 - 1] + sorted[m / 2]) / 2.0;
    }
done:
    PyMem_Free(sorted);
    PyBuffer_Release(&view);
    return out;
}

/* An order-preserving unsigned key of a finite double: keys compare as the values do, and -0.0 has the key of
   0.0 (they compare equal, so a stable sort keeps them in position order). */
static inline uint64_t order_key(double x) {
    if (x == 0.0) x = 0.0;
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    return (bits & (UINT64_C(1) << 63)) ? ~bits : bits | (UINT64_C(1) << 63);
}

/* The positions of the finite values of v[0:n] in a stable sort of them, into order[0:m] (m returned; -1 with
   MemoryError): an LSD radix sort on 16-bit digits of order_key, passes whose digit is the same for every
   value skipped. */
static Py_ssize_t stable_order(const double *v, Py_ssize_t n, int32_t *order) {
    Py_ssize_t m = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (isfinite(v[i])) m++;
    uint64_t *keys = PyMem_Malloc((size_t)(m ? m : 1) * sizeof(uint64_t));
    uint64_t *keys2 = PyMem_Malloc((size_t)(m ? m : 1) * sizeof(uint64_t));
    int32_t *order2 = PyMem_Malloc((size_t)(m ? m : 1) * sizeof(int32_t));
    Py_ssize_t *count = PyMem_Malloc(65536 * sizeof(Py_ssize_t));
    if (!keys || !keys2 || !order2 || !count) {
        PyMem_Free(keys);
        PyMem_Free(keys2);
        PyMem_Free(order2);
        PyMem_Free(count);
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t j = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (isfinite(v[i])) {
            keys[j] = order_key(v[i]);
            order[j++] = (int32_t)i;
        }
    }
    for (int shift = 0; shift < 64; shift += 16) {
        memset(count, 0, 65536 * sizeof(Py_ssize_t));
        for (Py_ssize_t i = 0; i < m; i++) count[(keys[i] >> shift) & 0xFFFF]++;
        if (m == 0 || count[(keys[0] >> shift) & 0xFFFF] == m) continue; /* one digit for all: nothing moves */
        Py_ssize_t sum = 0;
        for (Py_ssize_t d = 0; d < 65536; d++) {
            Py_ssize_t c = count[d];
            count[d] = sum;
            sum += c;
        }
        for (Py_ssize_t i = 0; i < m; i++) {
            Py_ssize_t at = count[(keys[i] >> shift) & 0xFFFF]++;
            keys2[at] = keys[i];
            order2[at] = order[i];
        }
        uint64_t *tk = keys;
        keys = keys2;
        keys2 = tk;
        memcpy(order, order2, (size_t)m * sizeof(int32_t));
    }
    PyMem_Free(keys);
    PyMem_Free(keys2);
    PyMem_Free(order2);
    PyMem_Free(count);
    return m;
}

#if defined(__GNUC__) || defined(__clang__)
#define CTZ64(x) __builtin_ctzll(x)
#define CLZ64(x) __builtin_clzll(x)
#else /* portable: x is never 0 here */
static inline int CTZ64(uint64_t x) {
    int n = 0;
    while (!(x & 1)) x >>= 1, n++;
    return n;
}
static inline int CLZ64(uint64_t x) {
    int n = 0;
    while (!(x >> 63)) x <<= 1, n++;
    return n;
}
#endif

/* The first set bit at or after p in bits (nbits bits), or nbits. */
static inline Py_ssize_t next_set(const uint64_t *bits, Py_ssize_t nbits, Py_ssize_t p) {
    if (p >= nbits) return nbits;
    Py_ssize_t w = p >> 6;
    uint64_t word = bits[w] & (~UINT64_C(0) << (p & 63));
    Py_ssize_t words = (nbits + 63) >> 6;
    while (!word) {
        if (++w >= words) return nbits;
        word = bits[w];
    }
    Py_ssize_t q = (w << 6) + CTZ64(word);
    return q < nbits ? q : nbits;
}

/* The last set bit before p (there is one). */
static inline Py_ssize_t prev_set(const uint64_t *bits, Py_ssize_t p) {
    Py_ssize_t w = (p - 1) >> 6;
    uint64_t word = bits[w] & (~UINT64_C(0) >> (63 - ((p - 1) & 63)));
    while (!word) word = bits[--w];
    return (w << 6) + 63 - CLZ64(word);
}

/* large(values, width, pad_before, pad_after): the points ranked by a stable sort (each its own rank, so equal
   values keep their position order), the window kept as a bitset over the ranks, and each window's middle
   found by walking from the last one (a window differs from the one before by a point in and a point out,
   so the middle moves a few set bits, skipped 64 ranks at a time). */
static PyObject *cmedian_large(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    Py_ssize_t width, before;
    Py_ssize_t q = series_args(args, "Onnn:large", "large", &view, &width, &before);
    if (q < 0) return NULL;
    const double *v = view.buf;
    Py_ssize_t n = view.len / (Py_ssize_t)sizeof(double);
    PyObject *out = NULL;
    int32_t *order = NULL, *rank = NULL;
    double *sorted = NULL;
    uint64_t *bits = NULL;
    if (n >= INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "large: too many points");
        goto done;
    }
    order = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    if (order == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t m_fin = stable_order(v, n, order);
    if (m_fin < 0) goto done;
    rank = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    sorted = PyMem_Malloc((size_t)(m_fin ? m_fin : 1) * sizeof(double));
    bits = PyMem_Calloc((size_t)((m_fin + 63) >> 6) + 1, sizeof(uint64_t));
    out = PyByteArray_FromStringAndSize(NULL, q * (Py_ssize_t)sizeof(double));
    if (!rank || !sorted || !bits || !out) {
        if (!PyErr_Occurred()) PyErr_NoMemory(); /* (PyMem_Malloc sets no error) */
        Py_CLEAR(out);
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) rank[i] = -1;
    for (Py_ssize_t r = 0; r < m_fin; r++) {
        rank[order[r]] = (int32_t)r;
        sorted[r] = v[order[r]];
    }
    PyMem_Free(order);
    order = NULL;
    double *res = (double *)PyByteArray_AS_STRING(out);
    Py_ssize_t m = 0, p = 0, below = 0; /* below: set bits before rank p */
    /* a point's rank into / out of the window */
#define ADD(r) (bits[(r) >> 6] |= UINT64_C(1) << ((r) & 63), m++, below += (r) < p)
#define DROP(r) (bits[(r) >> 6] &= ~(UINT64_C(1) << ((r) & 63)), m--, below -= (r) < p)
    Py_ssize_t from, to;
    first_window(n, width, before, &from, &to);
    for (Py_ssize_t j = from; j < to; j++)
        if (rank[j] >= 0) ADD(rank[j]);
    for (Py_ssize_t i = 0; i < q; i++) {
        Py_ssize_t in = i - before + width - 1, gone = i - before - 1;
        if (in >= 0 && in < n && rank[in] >= 0) ADD(rank[in]);
        if (gone >= 0 && gone < n && rank[gone] >= 0) DROP(rank[gone]);
        if (!m) {
            res[i] = Py_NAN;
            continue;
        }
        Py_ssize_t k = (m - 1) / 2;
        p = next_set(bits, m_fin, p); /* no set bit skipped: below stays */
        while (below > k) {
            p = prev_set(bits, p);
            below--;
        }
        while (below < k) {
            below++;
            p = next_set(bits, m_fin, p + 1);
        }
        double lower_mid = sorted[p];
        res[i] = m % 2 ? lower_mid : (lower_mid + sorted[next_set(bits, m_fin, p + 1)]) / 2.0;
    }
#undef ADD
#undef DROP
done:
    PyMem_Free(order);
    PyMem_Free(rank);
    PyMem_Free(sorted);
    PyMem_Free(bits);
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef cmedian_methods[] = {
    {"small", cmedian_small, METH_VARARGS,
     "small(values, width, pad_before, pad_after) -> bytearray: sliding medians, sorted-window method."},
    {"large", cmedian_large, METH_VARARGS,
     "large(values, width, pad_before, pad_after) -> bytearray: sliding medians over a bitset of the ranks."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cmedian_module = {
    PyModuleDef_HEAD_INIT, "_cmedian", "Sliding-window medians, compiled.", -1, cmedian_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cmedian(void) { return PyModule_Create(&cmedian_module); }
