/* lossdoctor._cmedian: sliding-window medians, compiled (optional; lossdoctor/rules/rolling.py is the
   reference and the fallback).

   Both functions give, for every window of `width` consecutive points of the series padded with `pad_before`
   / `pad_after` empty slots (window i covers padded positions i .. i + width - 1), the median of the window's
   finite values: the middle one, or the mean of the two middle ones for an even count; NaN for a window with
   none. Values that compare equal are ordered by position (a stable sort of the window), so -0.0 and 0.0 come
   out as sorting each window would give them.

   - small(values, width, pad_before, pad_after): the window kept as a sorted array (binary search, memmove);
     for short windows.
   - ranked(ranks, distinct, width, pad_before, pad_after): the series given as dense ranks into `distinct`
     (ascending; rank len(distinct) = not finite, skipped; equal values share a rank only where they are
     adjacent in the stable order, as rolling.py computes them), the window kept as counts per rank in a
     Fenwick tree: O(log D) per point, for long windows.

   - large(values, width, pad_before, pad_after): ranked() with the ranks made here (the distinct values
     hashed, then sorted), no sort of the points; None when the finite values hold both -0.0 and 0.0 (their
     stable order then depends on where they are) or more than 65,536 distinct values (a sort is faster
     then): the caller ranks them and calls ranked().

   Each returns a bytearray of float64, one per window. Inputs are read through the buffer protocol (float64 /
   int32, C-contiguous). Nothing is allocated per point. */

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
    Py_ssize_t q = n + before + after - width + 1;
    return q > 0 ? q : 0;
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

static PyObject *cmedian_small(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *obj;
    Py_ssize_t width, before, after;
    if (!PyArg_ParseTuple(args, "Onnn:small", &obj, &width, &before, &after)) return NULL;
    Py_buffer view;
    if (get_buffer(obj, &view, "d", sizeof(double), "small") < 0) return NULL;
    const double *v = view.buf;
    Py_ssize_t n = view.len / (Py_ssize_t)sizeof(double);
    Py_ssize_t q = windows(n, width, before, after);
    PyObject *out = NULL;
    double *sorted = NULL;
    if (q < 0) goto done;
    out = PyByteArray_FromStringAndSize(NULL, q * (Py_ssize_t)sizeof(double));
    sorted = PyMem_Malloc((size_t)(width + 1) * sizeof(double)); /* a point comes in before one goes */
    if (out == NULL || sorted == NULL) {
        Py_CLEAR(out);
        if (sorted == NULL) PyErr_NoMemory();
        goto done;
    }
    double *res = (double *)PyByteArray_AS_STRING(out);
    Py_ssize_t m = 0;
    /* the window of output i is original indices [i - before, i - before + width) */
    for (Py_ssize_t j = -before; j < width - before - 1; j++) {
        if (j >= 0 && j < n && isfinite(v[j])) {
            Py_ssize_t at = upper(sorted, m, v[j]);
            memmove(sorted + at + 1, sorted + at, (size_t)(m - at) * sizeof(double));
            sorted[at] = v[j];
            m++;
        }
    }
    for (Py_ssize_t i = 0; i < q; i++) {
        Py_ssize_t in = i - before + width - 1, gone = i - before - 1;
        if (in >= 0 && in < n && isfinite(v[in])) {
            Py_ssize_t at = upper(sorted, m, v[in]);
            memmove(sorted + at + 1, sorted + at, (size_t)(m - at) * sizeof(double));
            sorted[at] = v[in];
            m++;
        }
        if (gone >= 0 && gone < n && isfinite(v[gone])) {
            /* the oldest point: the first of the values equal to it (they are kept in position order) */
            Py_ssize_t at = lower(sorted, m, v[gone]);
            memmove(sorted + at, sorted + at + 1, (size_t)(m - at - 1) * sizeof(double));
            m--;
        }
        res[i] = m ? (sorted[(m - 1) / 2] + sorted[m / 2]) / 2.0 : Py_NAN;
    }
done:
    PyMem_Free(sorted);
    PyBuffer_Release(&view);
    return out;
}

/* The sliding medians of a series given as ranks (r[i] < d: the rank of a finite value, values[r[i]] its
   value; r[i] == d: not finite), into res (q windows). The window is kept as counts per rank in a Fenwick
   tree. 0, or -1 with MemoryError. */
static int fenwick_medians(const int32_t *r, Py_ssize_t n, const double *values, Py_ssize_t d, Py_ssize_t width,
                           Py_ssize_t before, Py_ssize_t q, double *res) {
    int32_t *tree = PyMem_Calloc((size_t)d + 1, sizeof(int32_t)); /* 1-based, over ranks 0..d-1 */
    if (tree == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t top = 1;
    while (top * 2 <= d) top *= 2;
    Py_ssize_t m = 0;
#define ADD(rank, delta)                                                      \
    do {                                                                      \
        for (Py_ssize_t t_ = (Py_ssize_t)(rank) + 1; t_ <= d; t_ += t_ & -t_) \
            tree[t_] += (delta);                                              \
    } while (0)
    for (Py_ssize_t j = -before; j < width - before - 1; j++) {
        if (j >= 0 && j < n && r[j] < d) {
            ADD(r[j], 1);
            m++;
        }
    }
    for (Py_ssize_t i = 0; i < q; i++) {
        Py_ssize_t in = i - before + width - 1, gone = i - before - 1;
        if (in >= 0 && in < n && r[in] < d) {
            ADD(r[in], 1);
            m++;
        }
        if (gone >= 0 && gone < n && r[gone] < d) {
            ADD(r[gone], -1);
            m--;
        }
        if (!m) {
            res[i] = Py_NAN;
            continue;
        }
        double pair[2];
        Py_ssize_t ks[2] = {(m - 1) / 2, m / 2};
        for (int h = 0; h < 2; h++) {
            if (h == 1 && ks[1] == ks[0]) {
                pair[1] = pair[0];
                break;
            }
            /* the rank holding the k-th smallest (0-based): the largest prefix with count <= k, plus one */
            Py_ssize_t pos = 0, k = ks[h];
            for (Py_ssize_t step = top; step; step >>= 1) {
                if (pos + step <= d && tree[pos + step] <= k) {
                    pos += step;
                    k -= tree[pos];
                }
            }
            pair[h] = values[pos]; /* rank pos (0-based) is tree index pos + 1 */
        }
        res[i] = (pair[0] + pair[1]) / 2.0;
    }
#undef ADD
    PyMem_Free(tree);
    return 0;
}

static PyObject *cmedian_ranked(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *rank_obj, *distinct_obj;
    Py_ssize_t width, before, after;
    if (!PyArg_ParseTuple(args, "OOnnn:ranked", &rank_obj, &distinct_obj, &width, &before, &after)) return NULL;
    Py_buffer rv, dv;
    if (get_buffer(rank_obj, &rv, "i", sizeof(int32_t), "ranked (ranks)") < 0) return NULL;
    if (get_buffer(distinct_obj, &dv, "d", sizeof(double), "ranked (distinct)") < 0) {
        PyBuffer_Release(&rv);
        return NULL;
    }
    const int32_t *r = rv.buf;
    Py_ssize_t n = rv.len / (Py_ssize_t)sizeof(int32_t), d = dv.len / (Py_ssize_t)sizeof(double);
    Py_ssize_t q = windows(n, width, before, after);
    PyObject *out = NULL;
    if (q < 0) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (r[i] < 0 || r[i] > d) {
            PyErr_SetString(PyExc_ValueError, "ranked: a rank outside 0..len(distinct)");
            goto done;
        }
    }
    out = PyByteArray_FromStringAndSize(NULL, q * (Py_ssize_t)sizeof(double));
    if (out == NULL) goto done;
    if (fenwick_medians(r, n, dv.buf, d, width, before, q, (double *)PyByteArray_AS_STRING(out)) < 0) Py_CLEAR(out);
done:
    PyBuffer_Release(&rv);
    PyBuffer_Release(&dv);
    return out;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* large() ranks by hashing up to this many distinct values (its tables stay in the CPU caches); beyond, the
   caller ranks the points by sorting them */
#define MAX_HASHED 65536

static inline uint64_t mix(uint64_t x) { /* splitmix64's finaliser */
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

/* large(values, width, pad_before, pad_after): the ranked method with the ranks made here (a hash table of
   the distinct values, which are then sorted): no sort of the points. None when the finite values hold both
   -0.0 and 0.0 (they compare equal but are two values; the caller ranks them in their stable order), or more
   than MAX_HASHED distinct values (the caller sorts). */
static PyObject *cmedian_large(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *obj;
    Py_ssize_t width, before, after;
    if (!PyArg_ParseTuple(args, "Onnn:large", &obj, &width, &before, &after)) return NULL;
    Py_buffer view;
    if (get_buffer(obj, &view, "d", sizeof(double), "large") < 0) return NULL;
    const double *v = view.buf;
    Py_ssize_t n = view.len / (Py_ssize_t)sizeof(double);
    Py_ssize_t q = windows(n, width, before, after);
    PyObject *out = NULL;
    int32_t *ranks = NULL, *slot_id = NULL, *rank_of = NULL;
    uint64_t *keys = NULL;
    double *distinct = NULL, *sorted = NULL;
    if (q < 0) goto done;
    if (n >= INT32_MAX) {
        out = Py_None;
        Py_INCREF(out);
        goto done;
    }
    int zero_pos = 0, zero_neg = 0;
    Py_ssize_t cap = 1024, d = 0;
    keys = PyMem_Malloc((size_t)cap * sizeof(uint64_t));
    slot_id = PyMem_Malloc((size_t)cap * sizeof(int32_t));
    distinct = PyMem_Malloc((size_t)(cap / 2) * sizeof(double));
    ranks = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    if (!keys || !slot_id || !distinct || !ranks) goto nomem;
    for (Py_ssize_t i = 0; i < cap; i++) slot_id[i] = -1;
    /* pass 1: each finite value's id (order of first appearance) */
    for (Py_ssize_t i = 0; i < n; i++) {
        double x = v[i];
        if (!isfinite(x)) {
            ranks[i] = -1;
            continue;
        }
        if (x == 0.0) {
            if (signbit(x))
                zero_neg = 1;
            else
                zero_pos = 1;
        }
        uint64_t bits;
        memcpy(&bits, &x, sizeof bits);
        Py_ssize_t h = (Py_ssize_t)(mix(bits) & (uint64_t)(cap - 1));
        while (slot_id[h] >= 0 && keys[h] != bits) h = (h + 1) & (cap - 1);
        if (slot_id[h] < 0) {
            if (d >= MAX_HASHED) { /* many distinct values: a sort of the points ranks them faster */
                out = Py_None;
                Py_INCREF(out);
                goto done;
            }
            if ((d + 1) * 2 > cap) { /* grow to keep the load under a half, then look again */
                Py_ssize_t ncap = cap * 2;
                uint64_t *nk = PyMem_Malloc((size_t)ncap * sizeof(uint64_t));
                int32_t *ns = PyMem_Malloc((size_t)ncap * sizeof(int32_t));
                double *nd = PyMem_Realloc(distinct, (size_t)(ncap / 2) * sizeof(double));
                if (!nk || !ns || !nd) {
                    PyMem_Free(nk);
                    PyMem_Free(ns);
                    if (nd) distinct = nd;
                    goto nomem;
                }
                distinct = nd;
                for (Py_ssize_t j = 0; j < ncap; j++) ns[j] = -1;
                for (Py_ssize_t j = 0; j < cap; j++) {
                    if (slot_id[j] < 0) continue;
                    Py_ssize_t g = (Py_ssize_t)(mix(keys[j]) & (uint64_t)(ncap - 1));
                    while (ns[g] >= 0) g = (g + 1) & (ncap - 1);
                    nk[g] = keys[j];
                    ns[g] = slot_id[j];
                }
                PyMem_Free(keys);
                PyMem_Free(slot_id);
                keys = nk;
                slot_id = ns;
                cap = ncap;
                h = (Py_ssize_t)(mix(bits) & (uint64_t)(cap - 1));
                while (slot_id[h] >= 0) h = (h + 1) & (cap - 1);
            }
            keys[h] = bits;
            slot_id[h] = (int32_t)d;
            distinct[d++] = x;
        }
        ranks[i] = slot_id[h];
    }
    if (zero_pos && zero_neg) {
        out = Py_None;
        Py_INCREF(out);
        goto done;
    }
    /* the distinct values sorted; each id's rank */
    sorted = PyMem_Malloc((size_t)(d ? d : 1) * sizeof(double));
    rank_of = PyMem_Malloc((size_t)(d ? d : 1) * sizeof(int32_t));
    if (!sorted || !rank_of) goto nomem;
    memcpy(sorted, distinct, (size_t)d * sizeof(double));
    qsort(sorted, (size_t)d, sizeof(double), cmp_double);
    for (Py_ssize_t id = 0; id < d; id++) {
        double x = distinct[id];
        Py_ssize_t lo = 0, hi = d; /* the distinct values are distinct: exactly one equals x */
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) >> 1;
            if (sorted[mid] < x)
                lo = mid + 1;
            else
                hi = mid;
        }
        rank_of[id] = (int32_t)lo;
    }
    for (Py_ssize_t i = 0; i < n; i++) ranks[i] = ranks[i] < 0 ? (int32_t)d : rank_of[ranks[i]];
    out = PyByteArray_FromStringAndSize(NULL, q * (Py_ssize_t)sizeof(double));
    if (out == NULL) goto done;
    if (fenwick_medians(ranks, n, sorted, d, width, before, q, (double *)PyByteArray_AS_STRING(out)) < 0)
        Py_CLEAR(out);
    goto done;
nomem:
    PyErr_NoMemory();
    Py_CLEAR(out);
done:
    PyMem_Free(keys);
    PyMem_Free(slot_id);
    PyMem_Free(distinct);
    PyMem_Free(sorted);
    PyMem_Free(rank_of);
    PyMem_Free(ranks);
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef cmedian_methods[] = {
    {"small", cmedian_small, METH_VARARGS,
     "small(values, width, pad_before, pad_after) -> bytearray: sliding medians, sorted-window method."},
    {"large", cmedian_large, METH_VARARGS,
     "large(values, width, pad_before, pad_after) -> bytearray | None: sliding medians over ranks made by hashing "
     "(None when the values hold both -0.0 and 0.0)."},
    {"ranked", cmedian_ranked, METH_VARARGS,
     "ranked(ranks, distinct, width, pad_before, pad_after) -> bytearray: sliding medians over dense ranks."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cmedian_module = {
    PyModuleDef_HEAD_INIT, "_cmedian", "Sliding-window medians, compiled.", -1, cmedian_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__cmedian(void) { return PyModule_Create(&cmedian_module); }
